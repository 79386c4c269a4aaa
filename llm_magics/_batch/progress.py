"""Progress displays of a batch run: the :class:`Progress` protocol the engine reports to,
the stderr line (:class:`TextProgress`), and :class:`WaitNotices`, which puts announced waits
(a retry, a rate limit) on the display when every worker may be waiting.

Thread safety: one run's display is driven from that run's event loop only.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol

from .._runtime.waits import Wait
from .stats import BatchStats

__all__ = ["NullProgress", "Progress", "TextProgress", "WaitNotices"]


class Progress(Protocol):
    """What the engine reports to. ``update`` is called after every finished prompt and must
    throttle itself; ``close`` is called exactly once, also after an interrupt."""

    def start(self, stats: BatchStats) -> None: ...
    def update(self, stats: BatchStats) -> None: ...
    def close(self, stats: BatchStats) -> None: ...


class NullProgress:
    def start(self, stats: BatchStats) -> None:
        pass

    def update(self, stats: BatchStats) -> None:
        pass

    def close(self, stats: BatchStats) -> None:
        pass


class TextProgress:
    """One line on stderr, rewritten in place with ``\\r`` (every 0.2 s on a terminal, every
    5 s when stderr is a file or a pipe, so logs stay short)."""

    def __init__(self, stream: Any = None, label: str = "llm") -> None:
        self.stream = stream
        self.label = label
        self._last = 0.0
        self._width = 0
        out = self._out()
        self.interval = 0.2 if getattr(out, "isatty", lambda: False)() else 5.0

    def _out(self) -> Any:
        return self.stream if self.stream is not None else sys.stderr

    def _write(self, text: str, end: str = "") -> None:
        line = f"{self.label}: {text}"
        pad = max(0, self._width - len(line))
        self._width = len(line)
        try:
            out = self._out()
            out.write("\r" + line + " " * pad + end)
            out.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not fail the run

    def start(self, stats: BatchStats) -> None:
        self._last = time.monotonic()
        self._write(stats.summary())

    def update(self, stats: BatchStats) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._write(stats.summary())

    def refresh(self, stats: BatchStats) -> None:
        """Show ``stats`` now, throttle or not (an announced wait)."""
        self._last = time.monotonic()
        self._write(stats.summary())

    def close(self, stats: BatchStats) -> None:
        note = stats.closing_note()
        self._write(stats.summary() + (f" · {note}" if note else ""), end="\n")


class WaitNotices:
    """The listener of announced waits during one run (:func:`llm_magics._runtime.waits.listening`):
    records each in the stats and shows news at once, since every worker may be waiting and
    nothing else would update the display soon."""

    __slots__ = ("_last_refresh", "_progress", "_stats")

    def __init__(self, stats: BatchStats, progress: Progress) -> None:
        self._stats = stats
        self._progress = progress
        self._last_refresh = 0.0

    def heard(self, wait: Wait) -> None:
        # News, and at most twice a second however many workers announce their waits.
        if self._stats.heard(wait) and time.monotonic() - self._last_refresh >= 0.5:
            self._last_refresh = time.monotonic()
            refresh = getattr(self._progress, "refresh", None)
            (refresh or self._progress.update)(self._stats)
