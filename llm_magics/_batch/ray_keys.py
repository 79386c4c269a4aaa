"""A worker's key pool in a Ray job (:class:`SharedKeyPool`): the worker's own keys (from its
environment), handed out by the job's :class:`~llm_magics._batch.ray_coordinator.JobCoordinator`.

The pipeline uses it as any KeyPool: ``acquire`` asks the coordinator for a key index and
returns the worker's key at that index (the driver passed the keys in pool order); 429s,
401s and token counts go to the coordinator, so a Retry-After one worker hears holds that key
back for every worker. A 429 or 401 report is sent without waiting for it (the pipeline
reports from synchronous code), and every later ``acquire`` of this worker first waits until
the reports before it have arrived: an async actor does not promise to run one caller's
calls in order, so the cool-down is made sure of before the next key is asked for.

Thread safety: as KeyPool; the coordinator serialises the shared state.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._client.keys import KeyPool
from .._core.errors import BudgetExceededError
from .._core.secrets import APIKey

__all__ = ["SharedKeyPool"]


class SharedKeyPool(KeyPool):
    """``local``'s keys, rationed by the job's coordinator (a Ray actor handle)."""

    def __init__(self, local: KeyPool, coordinator: Any) -> None:
        super().__init__(local.provider, local.secrets(), env=local.env, limits=local.limits)
        self._coordinator = coordinator
        self._reports: list[Any] = []

    async def acquire(self, estimated_tokens: int = 0, *, model: str | None = None) -> APIKey:
        while self._reports:
            reports, self._reports = self._reports, []
            await asyncio.gather(*reports)
        index = await self._coordinator.acquire.remote(max(int(estimated_tokens), 0))
        if index < 0:  # the driver stopped the job: a spending limit is reached
            reason = await self._coordinator.reason.remote()
            raise BudgetExceededError(reason or "not sent: the job was stopped")
        state = self._states[index]
        state.requests += 1
        return state.key

    def record(self, key: APIKey, input_tokens: int = 0, output_tokens: int = 0) -> None:
        self._coordinator.record.remote(self.index_of(key), input_tokens, output_tokens)

    def rate_limited(self, key: APIKey, retry_after: float | None) -> None:
        self._reports.append(self._coordinator.rate_limited.remote(self.index_of(key), retry_after))

    def auth_failed(self, key: APIKey) -> None:
        super().auth_failed(key)
        self._reports.append(self._coordinator.auth_failed.remote(self.index_of(key)))
