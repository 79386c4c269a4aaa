"""Fault-injection helpers shared by the provider and client tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2


class Chunks(httpx2.AsyncByteStream):
    """A response body that arrives in pieces and may break after them (fault injection)."""

    def __init__(self, chunks: list[bytes], fail: Exception | None = None) -> None:
        self.chunks = chunks
        self.fail = fail

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.fail is not None:
            raise self.fail


class Sleeps:
    """A RetryPolicy sleep that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
