"""Text that grows by small pieces (stream deltas) without quadratic copying.

``text += piece`` on an attribute copies the whole text every time: a 2 MB answer in 24-byte
pieces is tens of gigabytes of copying. A TextBuffer keeps the pieces and joins them when the
text is read, at most once per read after a change.

Thread safety: one writer thread; a reader on another thread sees a consistent prefix (the
pieces list is only appended to; joining holds the GIL).
"""

from __future__ import annotations

__all__ = ["TextBuffer"]


class TextBuffer:
    """Append pieces; read ``value`` (joined lazily) and ``len()`` (kept, never joined)."""

    __slots__ = ("_joined", "_joined_pieces", "_length", "_pieces")

    def __init__(self, text: str = "") -> None:
        self._pieces: list[str] = [text] if text else []
        self._length = len(text)
        self._joined = text
        self._joined_pieces = len(self._pieces)

    def append(self, piece: str) -> None:
        if piece:
            self._pieces.append(piece)
            self._length += len(piece)

    @property
    def value(self) -> str:
        count = len(self._pieces)
        if count != self._joined_pieces:
            # Join what is there without replacing the list the writer appends to.
            self._joined = "".join(self._pieces[:count])
            self._joined_pieces = count
        return self._joined

    def __len__(self) -> int:
        return self._length

    def __bool__(self) -> bool:
        return self._length > 0
