"""How a failed attempt is retried: the policy (how often, how long between), the count of
one call's failed attempts, and which failures are worth another try.

Thread safety: a RetryPolicy is read-only once made; an Attempts belongs to one call.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .._core import errors

__all__ = ["RETRYABLE_STATUS", "Attempts", "RetryPolicy", "is_retryable", "retry_reason"]


@dataclass
class RetryPolicy:
    """Bounded exponential backoff with full jitter. ``sleep`` and ``random`` are injectable
    so tests never wait for real.

    ``max_retries`` counts retries after 429s, server errors, timeouts and dropped
    connections: 2, as in the official OpenAI and Anthropic SDKs, so a broken server is
    reported within seconds. A 429 that moves the request to another key of the pool is
    rotation, not a retry, and is not counted (see ``Client._after_failure``)."""

    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    sleep: Callable[[float], Awaitable[Any]] = field(default=asyncio.sleep, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based); never less than
        ``retry_after``."""
        cap = min(self.backoff_max, self.backoff_base * (2**attempt))
        jittered = cap * (0.5 + 0.5 * self.random())
        return max(jittered, retry_after or 0.0)


class Attempts:
    """The failed attempts of one call so far: ``retries`` counted against the policy's
    ``max_retries``, ``rotations`` (a 429 that moved to another key) not."""

    __slots__ = ("retries", "rotations")

    def __init__(self) -> None:
        self.retries = 0
        self.rotations = 0

    @property
    def total(self) -> int:
        return self.retries + self.rotations


def retry_reason(exc: errors.LLMError) -> str:
    """Why a retry is needed, in a few words (for the announcement of the wait)."""
    who = exc.provider or "the provider"
    if isinstance(exc, errors.RateLimitError):
        asked = f", Retry-After {exc.retry_after:g} s" if exc.retry_after is not None else ""
        return f"{who} rate limit (429{asked})"
    if isinstance(exc, errors.TimeoutError):
        return f"{who} did not answer in time"
    if isinstance(exc, errors.APIConnectionError):
        return f"could not reach {who}"
    status = getattr(exc, "status_code", None)
    return f"{who} returned HTTP {status}" if status else f"{who} failed ({type(exc).__name__})"


RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, errors.RateLimitError | errors.TimeoutError | errors.APIConnectionError):
        return True
    if isinstance(exc, errors.BadRequestError | errors.AuthenticationError):
        return False
    if isinstance(exc, errors.ProviderError) and exc.status_code is not None:
        return exc.status_code in RETRYABLE_STATUS or exc.status_code >= 500
    return False
