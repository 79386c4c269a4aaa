"""The request pipeline: the one way a request travels, whoever sends it.

    build (Client.build_request) -> cache lookup -> media fitted to the provider ->
    budget (its cost reserved under lm.budget / max_cost, or refused) ->
    key from the pool + retry policy -> the wire (the provider) -> finish (schema, latency) ->
    accounting (the session's response hooks, the spend) -> cache put

``Client.achat``/``chat``, ``Client.astream`` (through :class:`~llm_magics._client.stream.ResponseStream`),
embeddings, transcription and the fan-out engine of ``df.llm`` all go through one
:class:`Pipeline`: the same cache rules, the same key pool, and one retry policy
(:class:`Retrying`) deciding what is retried, after which wait, and when the user's
``timeout=`` has run out.

Thread safety: a Pipeline is shared by every thread that uses its Client; its state (key
pool, cache) is thread-safe, and a Retrying belongs to one call.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, NamedTuple, Protocol, TypeVar

from .._core import errors
from .._core.errors import AuthenticationError, LLMError, OutputParseError, RateLimitError
from .._core.options import check_timeout
from .._core.secrets import APIKey
from .._core.session import SESSION
from .._core.types import ChatRequest, OutputSchema, Response
from .._media.prepare import prepare_media
from .._runtime.http import Timeouts
from .._runtime.http_errors import NOT_UNDERSTOOD, not_understood
from .._runtime.retry import Attempts, RetryPolicy, is_retryable, retry_reason
from .._runtime.waits import announce
from ..providers.base import Provider
from .budget import admit, spend
from .keys import KeyPool
from .usage import ResponseHooks, estimate_request_tokens

__all__ = ["CacheMode", "Pipeline", "Prepared", "ResponseCache", "Retrying"]

T = TypeVar("T")
CacheMode = bool | Literal["refresh"]


class ResponseCache(Protocol):
    """What the pipeline needs from a cache (see :mod:`llm_magics._cache.store`)."""

    def key_for(self, provider: Provider, request: ChatRequest) -> str: ...
    def get(self, key: str) -> Response | None: ...
    def put(self, key: str, response: Response) -> None: ...


class Prepared(NamedTuple):
    """A request built and looked up in the cache, ready for :meth:`Pipeline.answer`."""

    request: ChatRequest
    cache_key: str | None
    hit: Response | None


class Pipeline:
    """One provider and model with its key pool, cache, retry policy and timeouts."""

    def __init__(
        self,
        provider: Provider,
        model: str,
        model_id: str,
        *,
        keys: KeyPool | None,
        cache: ResponseCache | None,
        retry: RetryPolicy,
        timeouts: Timeouts,
    ) -> None:
        self.provider = provider
        self.model = model
        self.model_id = model_id
        self.keys = keys
        self.cache = cache
        self.retry = retry
        self.timeouts = timeouts

    # --- the cache ------------------------------------------------------------------------

    def cache_key(self, request: ChatRequest, mode: CacheMode | None) -> str | None:
        if self.cache is None or mode is False:
            return None
        return self.cache.key_for(self.provider, request)

    def lookup(self, key: str | None, mode: CacheMode | None) -> Response | None:
        if key is None or mode == "refresh" or self.cache is None:
            return None
        hit = self.cache.get(key)
        if hit is not None:
            hit.cached = True
        return hit

    def prepare(self, request: ChatRequest, mode: CacheMode | None) -> Prepared:
        key = self.cache_key(request, mode)
        return Prepared(request, key, self.lookup(key, mode))

    def prepare_many(
        self, requests: Sequence[ChatRequest], mode: CacheMode | None
    ) -> list[Prepared]:
        """:meth:`prepare` for many requests, asking the cache once for all of them (the
        fan-out engine's lookahead)."""
        keys = [self.cache_key(request, mode) for request in requests]
        get_many = getattr(
            self.cache, "get_many", None
        )  # the disk cache has it; a Protocol need not
        wanted = [key for key in keys if key is not None]
        if mode == "refresh" or not wanted:
            hits: dict[str, Response] = {}
        elif get_many is not None:
            hits = get_many(wanted)
        else:
            hits = {k: r for k in wanted if (r := self.lookup(k, mode)) is not None}
        prepared = []
        handed_out: set[str] = set()
        for request, key in zip(requests, keys, strict=True):
            hit = hits.get(key) if key is not None else None
            if hit is not None and key is not None:
                if key in handed_out:  # two prompts, one request: each gets its own object
                    hit = dataclasses.replace(hit)
                handed_out.add(key)
                hit.cached = True
            prepared.append(Prepared(request, key, hit))
        return prepared

    def put(self, key: str | None, response: Response) -> None:
        if key is not None and self.cache is not None:
            self.cache.put(key, response)

    # --- sending --------------------------------------------------------------------------

    async def answer(self, prepared: Prepared, timeout: float | None, started: float) -> Response:
        """The whole answer to a prepared chat request: from the cache, or sent."""
        request, cache_key, hit = prepared
        if hit is not None:
            return self.finish(hit, request, started)
        # After the cache lookup, so a hit costs no download or resizing.
        request = await prepare_media(request, self.provider)

        async def attempt(key: APIKey | None, timeouts: Timeouts) -> Response:
            response = await self.provider.chat(request, key, timeouts)
            self.record(key, response)
            return response

        ticket = admit(self.provider.name, self.model, request)
        try:
            response = await self.call(attempt, estimate_request_tokens(request), timeout=timeout)
            self.finish(response, request, started)
        finally:
            if ticket is not None:
                ticket.release()
        self.put(cache_key, response)
        return response

    async def call(
        self,
        op: Callable[[APIKey | None, Timeouts], Awaitable[T]],
        estimated_tokens: int = 0,
        *,
        timeout: float | None = None,
    ) -> T:
        """Run ``op`` with a key from the pool and this attempt's timeouts, retrying what is
        worth retrying (see :class:`Retrying`)."""
        retrying = self.retrying(estimated_tokens, timeout)
        while True:
            key, timeouts = await retrying.next_attempt()
            try:
                return await op(key, timeouts)
            except LLMError as exc:
                await retrying.failed(exc, key)
            except NOT_UNDERSTOOD as exc:
                raise not_understood(exc, self.provider.name, self.model) from exc

    def retrying(
        self,
        estimated_tokens: int = 0,
        timeout: float | None = None,
        *,
        timeouts: Timeouts | None = None,
    ) -> Retrying:
        """The retry state of one call: ``timeout`` bounds the whole call, every attempt and
        wait included; ``timeouts`` (default: the client's) are those of each attempt."""
        return Retrying(self, estimated_tokens, check_timeout(timeout), timeouts)

    def record(self, key: APIKey | None, response: Response) -> None:
        """Tell the key pool what an answer used (for its token-per-minute budget)."""
        if key is not None and self.keys is not None:
            self.keys.record(key, response.usage.input_tokens, response.usage.output_tokens)

    # --- finishing ------------------------------------------------------------------------

    def finish(self, response: Response, request: ChatRequest, started: float) -> Response:
        """Latency, the parsed answer of a schema or JSON request, and accounting."""
        if response.latency is None:
            response.latency = time.perf_counter() - started
        failure: ValueError | None = None
        if request.schema is not None and response.parsed is None and not response.tool_calls:
            try:
                response.parsed = request.schema.parse(response.text)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                failure = exc
        elif request.json_mode and response.parsed is None:
            try:
                response.parsed = OutputSchema("json", {}).parse(response.text)
            except ValueError:
                response.parsed = None
        # The answer was paid for whether or not it parses: account for it first.
        SESSION.get(ResponseHooks).run(response)
        spend(response)
        if failure is not None and request.schema is not None:
            raise OutputParseError(
                f"the answer of {self.model_id} does not match the schema "
                f"{request.schema.name}: {failure}",
                text=response.text,
                provider=self.provider.name,
                model=self.model,
                response=response,
            ) from failure
        return response


class Retrying:
    """The retry policy of one call: which failures are retried, after which wait, on which
    key, and when the call's own ``timeout=`` has run out. Used the same way by every
    sender::

        retrying = pipeline.retrying(tokens, timeout)
        while True:
            key, timeouts = await retrying.next_attempt()
            try:
                return await send(key, timeouts)
            except LLMError as exc:
                await retrying.failed(exc, key)   # waits and returns, or raises
    """

    __slots__ = ("_deadline", "_pipeline", "_timeout", "_timeouts", "_tokens", "tries")

    def __init__(
        self,
        pipeline: Pipeline,
        estimated_tokens: int,
        timeout: float | None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._timeouts = timeouts or pipeline.timeouts
        self._tokens = estimated_tokens
        self._timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self.tries = Attempts()

    async def next_attempt(self) -> tuple[APIKey | None, Timeouts]:
        """A key (waiting for one to be free) and the timeouts of the next attempt."""
        pipeline = self._pipeline
        key = None
        if pipeline.keys is not None:
            key = await pipeline.keys.acquire(self._tokens, model=pipeline.model)
        timeouts = self._timeouts
        if self._deadline is not None:
            timeouts = timeouts.replace(max(self._deadline - time.monotonic(), 0.001))
        return key, timeouts

    async def failed(self, exc: LLMError, key: APIKey | None) -> None:
        """Return (after any wait) when ``exc`` is worth another attempt, else raise."""
        deadline = self._deadline
        if (
            deadline is not None
            and isinstance(exc, errors.TimeoutError)
            and deadline - time.monotonic() < 0.05
        ):
            # The call's own time ran out (an attempt's timeout ending early, such as a
            # connect timeout, leaves time for a retry).
            raise self._out_of_time(exc) from exc
        pipeline, tries = self._pipeline, self.tries
        pool = pipeline.keys
        if isinstance(exc, AuthenticationError) and key is not None and pool is not None:
            if len(pool) > 1:
                pool.auth_failed(key)
                if pool.has_live_keys:
                    return
            raise exc
        if not is_retryable(exc):
            raise exc
        policy = pipeline.retry
        retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
        if isinstance(exc, RateLimitError) and pool is not None and key is not None:
            rotating = len(pool) > 1 and tries.rotations < 4 * len(pool)
            if not rotating and tries.retries >= policy.max_retries:
                raise exc
            wait = retry_after
            if wait is None and len(pool) == 1:
                wait = policy.delay(tries.retries)
            if deadline is not None and wait is not None and time.monotonic() + wait > deadline:
                raise exc
            if rotating:
                tries.rotations += 1
            else:
                tries.retries += 1
            # The pool holds the key back until its Retry-After has passed; acquire() waits
            # (and says so) when no other key is free.
            pool.rate_limited(key, wait)
            return
        if tries.retries >= policy.max_retries:
            raise exc
        delay = policy.delay(tries.retries, retry_after)
        if deadline is not None and time.monotonic() + delay > deadline:
            raise exc
        tries.retries += 1
        announce(delay, f"{retry_reason(exc)}; retry {tries.retries} of {policy.max_retries}")
        await policy.sleep(delay)

    def _out_of_time(self, exc: errors.TimeoutError) -> errors.TimeoutError:
        name = self._pipeline.provider.name
        attempts = self.tries.total + 1
        tried = f" ({attempts} attempts)" if attempts > 1 else ""
        return errors.TimeoutError(
            f"{name} did not answer within timeout={self._timeout:g} s{tried}. Raise "
            "timeout= or try again later.",
            provider=name,
            model=self._pipeline.model,
            request=exc.request,
        )
