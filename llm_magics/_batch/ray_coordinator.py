"""The one actor every worker of a Ray job asks (:class:`JobCoordinator`): the job's rate
budget, its cluster-wide dedup, and its running totals.

* **One rate budget.** The coordinator holds the job's :class:`~llm_magics._client.keys.KeyPool`
  (over placeholders: it never sees a secret) with the limits the driver resolved (arguments,
  ``<P>_RPM_LIMIT``..., the model profile). Workers ``acquire`` a key *index* before each
  request and report 429s (with Retry-After), 401s and token counts back, so per-key RPM,
  RPD and TPM and every cool-down hold for the whole job, whatever the number of workers.
* **Each unique prompt once across the cluster** (``lm.ray.map`` over a Dataset, whose rows
  the driver never sees): a worker ``claim``s the prompts of its batch; the first claimant
  answers and ``settle``s, the others ``wait`` for the answer. A claim not settled within
  its lease (a worker that died) passes to the next waiter.
* **Totals**: rows done and failed, and the usage record of every answer, which the driver
  counts into its progress display and ``lm.usage()``.

It is a plain class here; :func:`llm_magics._batch.ray_engine.start_coordinator` makes it an
async Ray actor, so all of it runs on one event loop (no locks needed) and ``acquire`` waits
without blocking the others. Clock and sleep are injectable through ``time_scale`` (a test's
virtual minute), as for a KeyPool.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from .._client.keys import DEFAULT_MARGIN, KeyPool
from .._client.limits import RateLimits

__all__ = ["DEFAULT_LEASE", "JobCoordinator"]

#: Seconds a claimed prompt may stay unanswered before another worker takes it over.
DEFAULT_LEASE = 900.0

Settled = tuple[Any, str | None]  # value, error


class JobCoordinator:
    """The rate budget, dedup and totals of one Ray job."""

    def __init__(
        self,
        provider: str,
        key_count: int,
        limits: RateLimits,
        *,
        time_scale: float = 1.0,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        self._scale = time_scale
        self._pool = (
            KeyPool(
                provider,
                [f"placeholder-key-{i}" for i in range(key_count)],
                limits=limits,
                # The margin covers transit time, which passes in real seconds.
                margin=DEFAULT_MARGIN * time_scale,
                clock=lambda: time.monotonic() * time_scale,
                sleep=lambda seconds: asyncio.sleep(seconds / time_scale),
            )
            if key_count
            else None
        )
        self._lease = lease
        self._settled: dict[str, Settled] = {}
        self._claims: dict[str, float] = {}
        self._events: dict[str, asyncio.Event] = {}
        self._usage: list[dict[str, Any]] = []
        self.stopped: str | None = None
        self.totals = {"rows": 0, "errors": 0}

    # --- the rate budget -----------------------------------------------------------------

    async def acquire(self, estimated_tokens: int = 0) -> int:
        """The index of a key with headroom (waiting until one has it); -1 once the job is
        stopped (:meth:`stop`): nothing more is to be sent."""
        assert self._pool is not None
        if self.stopped is not None:
            return -1
        key = await self._pool.acquire(estimated_tokens)
        if self.stopped is not None:
            return -1
        return self._pool.index_of(key)

    def record(self, index: int, input_tokens: int, output_tokens: int) -> None:
        assert self._pool is not None
        self._pool.record(self._pool.key_at(index), input_tokens, output_tokens)

    def rate_limited(self, index: int, retry_after: float | None) -> None:
        assert self._pool is not None
        self._pool.rate_limited(self._pool.key_at(index), retry_after)

    def auth_failed(self, index: int) -> None:
        assert self._pool is not None
        self._pool.auth_failed(self._pool.key_at(index))

    def stop(self, reason: str) -> None:
        """Send nothing more (a spending limit is reached): requests in flight finish, the
        rest fail with ``reason``."""
        self.stopped = reason

    def reason(self) -> str | None:
        return self.stopped

    def key_status(self) -> list[dict[str, Any]]:
        return self._pool.status() if self._pool is not None else []

    # --- dedup across the cluster --------------------------------------------------------

    def claim(self, keys: list[str]) -> tuple[list[str], dict[str, Settled]]:
        """Which of ``keys`` the caller answers (first claim, or a lapsed one), and the
        answers already settled; the rest are being answered elsewhere (``wait``)."""
        now = time.monotonic()
        mine: list[str] = []
        done: dict[str, Settled] = {}
        for key in keys:
            found = self._settled.get(key)
            if found is not None:
                done[key] = found
                continue
            claimed = self._claims.get(key)
            if claimed is None or now - claimed > self._lease:
                self._claims[key] = now
                mine.append(key)
        return mine, done

    def settle(self, answers: dict[str, Settled]) -> None:
        for key, answer in answers.items():
            self._settled[key] = answer
            self._claims.pop(key, None)
            event = self._events.pop(key, None)
            if event is not None:
                event.set()

    async def wait(self, keys: list[str]) -> tuple[list[str], dict[str, Settled]]:
        """The answers of ``keys`` once settled; a key whose claim lapses while waiting
        comes back as the caller's to answer."""
        waits = [
            self._events.setdefault(k, asyncio.Event()) for k in keys if k not in self._settled
        ]
        if waits:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(e.wait() for e in waits)), self._lease / self._scale
                )
        return self.claim(keys)

    # --- totals --------------------------------------------------------------------------

    def add(self, rows: int, errors: int, usage: list[dict[str, Any]]) -> None:
        """A batch is done: its rows, failed rows, and one usage record per answer."""
        self.totals["rows"] += rows
        self.totals["errors"] += errors
        self._usage.extend(usage)

    def progress(self) -> dict[str, int]:
        return dict(self.totals)

    def take_usage(self) -> list[dict[str, Any]]:
        """The usage records added since the last call (the driver folds them in)."""
        taken, self._usage = self._usage, []
        return taken
