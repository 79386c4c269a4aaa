"""Talking to a provider about its batch jobs (:class:`JobWire`): every call of one set of
jobs on the one key that made them (a job belongs to the account of its key, so key rotation
would ask the wrong account), with the client's retry policy for what is worth retrying; and
how often a running job is asked about (:class:`JobPolling`, a part of the session, so tests
can make waiting instant or drive a fake server from it).

Thread safety: a JobWire belongs to one run, on the package's loop thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .._client.client import Client
from .._core.errors import LLMError, RateLimitError
from .._core.secrets import APIKey
from .._core.session import SESSION
from .._runtime.http import Timeouts
from .._runtime.retry import is_retryable, retry_reason
from .._runtime.waits import announce

__all__ = ["JobPolling", "JobWire", "polls"]

T = TypeVar("T")

#: A request's whole time for an upload or a download of a job's files (they can be large).
FILE_TIMEOUT = 600.0


@dataclass
class JobPolling:
    """How a running job is waited on: the first pause between two looks at it, how much
    longer each next pause is, the longest pause, and the sleep itself."""

    first: float = 5.0
    factor: float = 1.5
    longest: float = 60.0
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep


def polls() -> JobPolling:
    return SESSION.get(JobPolling)


class JobWire:
    """The calls of one set of jobs, on one key (``fingerprint``: the key that made them)."""

    def __init__(self, client: Client, fingerprint: str | None = None) -> None:
        self.client = client
        self.provider = client.provider
        self.fingerprint = fingerprint
        self._key: APIKey | None = None

    async def key(self) -> APIKey | None:
        """The key of these jobs: the one that made them when it is still in the pool, else
        the pool's next; None for a provider without keys."""
        pool = self.client.keys
        if pool is None:
            return None
        if self._key is None:
            found = pool.find(self.fingerprint) if self.fingerprint else None
            self._key = found or await pool.acquire(0, model=self.client.model)
            self.fingerprint = self._key.fingerprint
        return self._key

    async def call(
        self, op: Callable[[APIKey | None, Timeouts], Awaitable[T]], *, files: bool = False
    ) -> T:
        """``op(key, timeouts)``, retried as the client retries (``files``: an upload or a
        download, given more time)."""
        pipeline = self.client.pipeline
        policy = pipeline.retry
        timeouts = pipeline.timeouts
        if files:
            timeouts = timeouts.replace(max(timeouts.total, FILE_TIMEOUT))
        key = await self.key()
        tries = 0
        while True:
            try:
                return await op(key, timeouts)
            except LLMError as exc:
                if not is_retryable(exc) or tries >= policy.max_retries:
                    raise
                retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
                delay = policy.delay(tries, retry_after)
                tries += 1
                announce(delay, f"{retry_reason(exc)}; retry {tries} of {policy.max_retries}")
                await policy.sleep(delay)
