"""Streaming answers: :class:`ResponseStream` (async) and :class:`TextStream` (sync), what
``Client.astream`` / ``Client.stream`` return.

A cached answer replays as a stream; a live one goes through the same key pool, retries and
cache as ``Client.achat``. Thread safety: a stream is consumed by one caller; TextStream drives
its ResponseStream on the private loop thread.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator

from .._core.errors import LLMError, StreamInterruptedError
from .._core.textbuffer import TextBuffer
from .._core.types import ChatRequest, Response
from .._media.prepare import prepare_media
from .._runtime import loop
from .._runtime.http import Timeouts
from .._runtime.http_errors import NOT_UNDERSTOOD, not_understood
from .budget import admit
from .pipeline import Pipeline, Prepared
from .usage import estimate_request_tokens

__all__ = ["ResponseStream", "TextStream"]


class ResponseStream:
    """Async iterator of text deltas. After it is exhausted, ``response`` is the full Response.

    A cached answer replays as a stream. A stream that breaks before its first delta is
    retried like any request; one that breaks later raises StreamInterruptedError with the
    text that arrived on ``partial_text``.
    """

    def __init__(self, pipeline: Pipeline, prepared: Prepared, timeouts: Timeouts) -> None:
        self.pipeline = pipeline
        self.request = prepared.request
        self.response: Response | None = None
        self._prepared = prepared
        self._text = TextBuffer()
        self._timeouts = timeouts
        self._iterator: AsyncIterator[str] | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    async def __anext__(self) -> str:
        return await self.__aiter__().__anext__()

    async def aclose(self) -> None:
        if self._iterator is not None:
            await self._iterator.aclose()  # type: ignore[attr-defined]

    @property
    def text(self) -> str:
        """What has arrived so far."""
        return self._text.value

    async def _run(self) -> AsyncIterator[str]:
        pipeline = self.pipeline
        provider = pipeline.provider
        request, cache_key, hit = self._prepared
        started = time.perf_counter()
        if hit is not None:
            for piece in _replay_chunks(hit.text):
                self._text.append(piece)
                yield piece
            self.response = pipeline.finish(hit, request, started)
            return
        if not provider.supports_stream:
            raise provider.unsupported("streaming")
        request = await prepare_media(request, provider)
        ticket = admit(provider.name, pipeline.model, request)
        try:
            async with contextlib.aclosing(self._send(request, cache_key, started)) as pieces:
                async for piece in pieces:
                    yield piece
        finally:
            if ticket is not None:
                ticket.release()

    async def _send(
        self, request: ChatRequest, cache_key: str | None, started: float
    ) -> AsyncGenerator[str, None]:
        pipeline = self.pipeline
        provider = pipeline.provider
        retrying = pipeline.retrying(estimate_request_tokens(request), timeouts=self._timeouts)
        while True:
            key, timeouts = await retrying.next_attempt()
            final: Response | None = None
            try:
                async for item in provider.stream(request, key, timeouts):
                    if isinstance(item, Response):
                        final = item
                    else:
                        self._text.append(item)
                        yield item
            except StreamInterruptedError:
                raise  # it keeps the text and its own cause
            except LLMError as exc:
                if self._text:  # text has reached the caller: a retry would repeat it
                    raise self._interrupted(exc) from exc
                await retrying.failed(exc, key)
                continue
            except NOT_UNDERSTOOD as exc:
                error = not_understood(exc, provider.name, pipeline.model)
                error.__cause__ = exc
                if self._text:
                    raise self._interrupted(error) from error
                raise error from exc
            if final is None:
                final = Response(self.text, pipeline.model, provider.name)
            pipeline.record(key, final)
            self.response = pipeline.finish(final, request, started)
            pipeline.put(cache_key, final)
            return

    def _interrupted(self, exc: LLMError) -> StreamInterruptedError:
        return StreamInterruptedError(
            f"the {self.pipeline.provider.name} stream failed after {len(self.text)} "
            f"characters: {exc}",
            partial_text=self.text,
            provider=self.pipeline.provider.name,
            model=self.pipeline.model,
        )


def _replay_chunks(text: str, size: int = 24, most: int = 64) -> Iterator[str]:
    """A cached answer as a stream: small pieces, but never more than ``most`` of them, so a
    long answer replays in a blink (each piece costs a hop between threads)."""
    size = max(size, -(-len(text) // most))
    for start in range(0, len(text), size):
        yield text[start : start + size]


class TextStream:
    """Sync iterator over a :class:`ResponseStream`, driven on the private loop thread."""

    def __init__(self, stream: ResponseStream) -> None:
        self._stream = stream
        self._iterator: Iterator[str] | None = None

    @property
    def response(self) -> Response | None:
        return self._stream.response

    @property
    def text(self) -> str:
        return self._stream.text

    def __iter__(self) -> Iterator[str]:
        if self._iterator is None:
            self._iterator = loop.iterate(self._stream.__aiter__())
        return self._iterator

    def __next__(self) -> str:
        return next(iter(self))

    def close(self) -> None:
        if self._iterator is not None:
            self._iterator.close()  # type: ignore[attr-defined]

    def __enter__(self) -> TextStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
