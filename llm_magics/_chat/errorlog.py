"""The errors of recent notebook cells, so a prompt can say ``{Err[-1]}`` or ``{Err[7]}``.

An :class:`ErrorRecord` is one failed cell as a readable traceback: only the user's frames
(not IPython's, this package's or the thread/loop plumbing), with every key the package
knows scrubbed out, since the text is sent to a model. Nothing here imports IPython.

Thread safety: an :class:`ErrorLog` is written from the kernel's main thread only.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from dataclasses import dataclass

from .._core.secrets import scrub

__all__ = ["ErrorLog", "ErrorRecord"]


@dataclass(frozen=True)
class ErrorRecord:
    """One failed cell: ``str()`` is a readable traceback (cell frames only, no colours)."""

    execution_count: int | None
    type: str
    message: str
    traceback: str
    cell: str = ""

    def __str__(self) -> str:
        return self.traceback

    @classmethod
    def from_exception(
        cls, exc: BaseException, execution_count: int | None = None, cell: str = ""
    ) -> ErrorRecord:
        te = traceback.TracebackException.from_exception(exc)
        frames = [f for f in te.stack if not _is_machinery_frame(f.filename)]
        te.stack = traceback.StackSummary.from_list(frames)
        lines = list(te.format())
        if not frames and lines and lines[0].startswith("Traceback"):
            lines = lines[1:]
        # {Err[-1]} sends this text to a model: no key the package knows may be in it, even
        # one raised by code that is not ours.
        text = scrub("".join(lines).rstrip())
        return cls(execution_count, type(exc).__name__, scrub(str(exc)), text, cell)


# The package root (two levels up from _chat/errorlog.py), not just this folder.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))).replace("\\", "/") + "/"
_MACHINERY = (
    "/IPython/core/",
    "/IPython/utils/",
    "/concurrent/futures/",
    "/asyncio/",
    "/contextlib.py",
)


def _is_machinery_frame(filename: str) -> bool:
    """Frames of IPython, this package and the thread/loop plumbing between them tell the
    model nothing about the user's bug."""
    normalized = filename.replace("\\", "/")
    return normalized.startswith(_PACKAGE_DIR) or any(m in normalized for m in _MACHINERY)


class ErrorLog:
    """The errors of recent cells, newest last.

    ``log[-1]`` is the latest error, ``log[-2]`` the one before; ``log[7]`` the error of cell
    7 (like ``Out[7]``). Thread safety: written from the kernel's main thread only.
    """

    def __init__(self, limit: int = 50) -> None:
        self.limit = limit
        self._records: list[ErrorRecord] = []

    def record(self, record: ErrorRecord) -> None:
        self._records.append(record)
        del self._records[: -self.limit]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[ErrorRecord]:
        return iter(self._records)

    def __getitem__(self, key: int) -> ErrorRecord:
        if not isinstance(key, int):
            raise TypeError("Err takes -1 (latest error), -2, ... or a cell number")
        if not self._records:
            raise IndexError("no cell has failed yet in this kernel")
        if key < 0:
            if -key > len(self._records):
                raise IndexError(f"only {len(self._records)} error(s) recorded")
            return self._records[key]
        for rec in reversed(self._records):
            if rec.execution_count == key:
                return rec
        counts = ", ".join(str(r.execution_count) for r in self._records[-10:])
        raise KeyError(f"cell {key} did not fail (recent failed cells: {counts})")

    def __repr__(self) -> str:
        return f"ErrorLog({len(self)} errors)"
