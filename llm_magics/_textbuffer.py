"""Text that grows by small pieces (stream deltas) without quadratic copying.

``text += piece`` on an attribute copies the whole text every time: a 2 MB answer in 24-byte
pieces is tens of gigabytes of copying. A TextBuffer keeps the pieces and joins them when the
text is read, at most once per read after a change.

Thread safety: none; one writer, readers on the same thread.
"""

from __future__ import annotations

__all__ = ["TextBuffer"]


class TextBuffer:
    """Append pieces; read ``value`` (joined lazily) and ``len()`` (kept, never joined)."""

    __slots__ = ("_length", "_pieces")

    def __init__(self, text: str = "") -> None:
        self._pieces: list[str] = [text] if text else []
        self._length = len(text)

    def append(self, piece: str) -> None:
        if piece:
            self._pieces.append(piece)
            self._length += len(piece)

    @property
    def value(self) -> str:
        if len(self._pieces) > 1:
            self._pieces = ["".join(self._pieces)]
        return self._pieces[0] if self._pieces else ""

    def __len__(self) -> int:
        return self._length

    def __bool__(self) -> bool:
        return self._length > 0
