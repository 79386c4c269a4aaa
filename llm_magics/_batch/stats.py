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

__all__ = ["BatchStats", "JobProgress"]


@dataclass
class JobProgress:
    """Where the provider Batch API jobs of one run are, summed over its jobs: requests in
    them, answered, failed, expired or canceled so far, the provider's status words, and
    when they were submitted (monotonic) for the ETA."""

    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    expired: int = 0
    canceled: int = 0
    jobs: int = 0
    status: str = "submitting"
    submitted: float = field(default_factory=time.monotonic)
    #: DataFrame rows waiting on these requests (for the progress bar).
    rows: int = 0

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.expired + self.canceled

    @property
    def eta(self) -> float | None:
        """Seconds to go at the rate so far (None before any request finished)."""
        done = self.finished
        if done >= self.requests:
            return 0.0
        elapsed = time.monotonic() - self.submitted
        return (self.requests - done) * elapsed / done if done and elapsed > 0 else None

    def summary(self) -> str:
        jobs = f"{self.jobs} batch jobs" if self.jobs != 1 else "batch job"
        parts = [
            f"{jobs} {self.status}: {self.finished:,}/{self.requests:,} requests done",
            f"{self.failed:,} failed",
        ]
        if self.expired:
            parts.append(f"{self.expired:,} expired")
        if self.canceled:
            parts.append(f"{self.canceled:,} canceled")
        eta = self.eta
        parts.append(f"ETA {duration(eta)}" if eta is not None else "ETA up to 24h")
        return " · ".join(parts)


@dataclass
class BatchStats:
    """Live counters of one run; what progress displays show. Row counts, not request counts,
    except ``requests`` (prompts sent to the provider) and ``cache_hits`` (prompts answered
    from the response cache). Savings: ``saved`` is what the response-cache hits cost when
    they were first asked, ``prompt_cache_saved`` what the provider's prompt cache took off
    the input of the requests sent (``cached_input_tokens`` of their ``input_tokens``)."""

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
    saved: float = 0.0
    cached_input_tokens: int = 0
    prompt_cache_saved: float = 0.0
    #: The provider Batch API jobs of a ``mode="batch"`` run, while they run (else None).
    job: JobProgress | None = None
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

    @property
    def rows_done(self) -> int:
        """Rows done, counting those whose requests a running batch job has finished (their
        answers are fetched when the job ends)."""
        job = self.job
        if job is None or not job.requests:
            return self.done
        share = min(job.finished / job.requests, 1.0)
        return min(self.done + round(share * job.rows), self.total)

    def cost_text(self) -> str:
        if self.unpriced and not self.cost:
            return "cost unknown"
        return money(self.cost) + ("+?" if self.unpriced else "")

    def summary(self) -> str:
        """One line: what a person wants to see while it runs and after."""
        job = self.job if self.status == "running" else None
        parts = [f"{self.rows_done:,}/{self.total:,} rows"]
        if job is not None:
            parts.append(job.summary())
        elif self.status == "running":
            parts.append(f"{self.rate:,.1f} rows/s")
            eta = self.eta
            parts.append(f"ETA {duration(eta)}")
        else:
            parts.append(duration(self.elapsed))
        parts.append(f"{self.tokens:,} tokens")
        parts.append(self.cost_text())
        cached = f"{self.cache_hits:,} cached"
        if self.saved:
            cached += f" (saved {money(self.saved)})"
        parts.append(cached)
        if self.cached_input_tokens:
            parts.append(
                f"prompt cache: {self.cached_input_tokens:,} tokens, "
                f"saved {money(self.prompt_cache_saved)}"
            )
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
        if self.status == "done" and self.job is not None:  # wait=False: the job runs on
            jobs = f"{self.job.jobs} batch jobs" if self.job.jobs > 1 else "a batch job"
            return (
                f"{self.job.requests:,} requests run in {jobs} at the provider: "
                "handle.status() shows where, handle.result() waits for the answers"
            )
        if self.status == "interrupted" and self.job is not None:
            return (
                "interrupted while waiting: the batch job keeps running at the provider; run "
                "the same call again to resume waiting (nothing is submitted twice)"
            )
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
