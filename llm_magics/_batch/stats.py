"""The live counters of one batch run (:class:`BatchStats`): rows done, errors, tokens, cost,
the latest announced wait, and the one-line summary progress displays show.

Thread safety: written only from the run's event loop; displays read it from that loop too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from .._core.fmt import duration, money
from .._runtime.waits import Wait

__all__ = ["BatchStats"]


@dataclass
class BatchStats:
    """Live counters of one run; what progress displays show. Row counts, not request counts,
    except ``requests`` (prompts sent to the provider) and ``cache_hits`` (prompts answered
    from the response cache)."""

    total: int
    done: int = 0
    errors: int = 0
    skipped: int = 0
    unique: int = 0
    requests: int = 0
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    status: Literal["running", "done", "interrupted", "failed"] = "running"
    model: str = ""
    #: The latest announced wait (a retry, a rate limit) and when it ends (monotonic).
    waiting: str = ""
    waiting_until: float = 0.0
    cached: bool = True

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        """Rows per second so far."""
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds to go at the current rate, None before it is known."""
        if self.done >= self.total:
            return 0.0
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 else None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def cost_text(self) -> str:
        if self.unpriced and not self.cost:
            return "cost unknown"
        return money(self.cost) + ("+?" if self.unpriced else "")

    def summary(self) -> str:
        """One line: what a person wants to see while it runs and after."""
        parts = [f"{self.done:,}/{self.total:,} rows"]
        if self.status == "running":
            parts.append(f"{self.rate:,.1f} rows/s")
            eta = self.eta
            parts.append(f"ETA {duration(eta)}")
        else:
            parts.append(duration(self.elapsed))
        parts.append(f"{self.tokens:,} tokens")
        parts.append(self.cost_text())
        parts.append(f"{self.cache_hits:,} cached")
        parts.append(f"{self.errors:,} error{'s' if self.errors != 1 else ''}")
        if self.skipped:
            parts.append(f"{self.skipped:,} skipped")
        if self.status == "running" and self.waiting and time.monotonic() < self.waiting_until:
            parts.append(self.waiting)
        return " · ".join(parts)

    def heard(self, wait: Wait) -> bool:
        """A wait was announced: show it until it is over. True when it is news (not the
        same wait another worker announced already)."""
        text, until = str(wait), time.monotonic() + wait.seconds
        news = text != self.waiting or until > self.waiting_until + 1.0
        self.waiting, self.waiting_until = text, until
        return news

    def closing_note(self) -> str:
        if self.status == "interrupted":
            kept = (
                "finished rows are cached; run the same call again to send only the rest"
                if self.cached
                else "cache=False, so a rerun starts over"
            )
            return f"interrupted at {self.done:,}/{self.total:,} rows: {kept}"
        if self.status == "failed":
            return f"stopped at {self.done:,}/{self.total:,} rows by an error"
        return ""
