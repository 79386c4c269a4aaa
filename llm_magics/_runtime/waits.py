"""Saying why nothing is happening: every wait of the package (a retry's back-off, a
Retry-After, a key's cool-down or rate limit) is announced before it starts.

Whoever shows progress (a ``%%llm`` cell, the ``df.llm`` progress bar) installs a listener
with :func:`listening` inside the coroutine that does the work; every task that coroutine
starts inherits it. With no listener, a wait of :data:`ANNOUNCE_AFTER` seconds or more is
logged as a warning on the ``llm_magics`` logger (Python prints warnings to stderr even when
logging is not configured), shorter ones at INFO.

Thread safety: a listener is called on the thread that waits (the package's loop thread), so
it must only hand the notice over (to a queue, to counters), never touch a display itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .._core.fmt import duration

__all__ = ["ANNOUNCE_AFTER", "Wait", "announce", "listening"]

log = logging.getLogger("llm_magics")

#: Waits at least this long are worth a warning when nobody listens.
ANNOUNCE_AFTER = 2.0


@dataclass(frozen=True)
class Wait:
    """One wait about to start: how long and why (``reason`` reads as a sentence part)."""

    seconds: float
    reason: str

    def __str__(self) -> str:
        return f"waiting {duration(self.seconds)}: {self.reason}"


Listener = Callable[[Wait], None]
_listener: contextvars.ContextVar[Listener | None] = contextvars.ContextVar(
    "llm_magics_wait_listener", default=None
)


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Send the waits of the current context (and the tasks it starts) to ``listener``."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def announce(seconds: float, reason: str) -> None:
    """Tell whoever listens (or the log) that a wait of ``seconds`` starts now."""
    wait = Wait(seconds, reason)
    listener = _listener.get()
    if listener is not None:
        listener(wait)
    elif seconds >= ANNOUNCE_AFTER:
        log.warning("llm_magics: %s", wait)
    else:
        log.info("llm_magics: %s", wait)
