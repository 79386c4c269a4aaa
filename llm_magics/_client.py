"""The client users hold: one provider + one model + defaults, with the same behaviour around
every provider: retries, key rotation, the response cache, schema parsing, usage hooks.

Sync methods run the async ones on the private loop thread (:mod:`llm_magics._loop`), so they
work inside a running Jupyter kernel. A Client is safe to share between threads.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from . import _errors as errors
from . import _loop
from ._errors import (
    AuthenticationError,
    ConfigError,
    LLMError,
    OutputParseError,
    RateLimitError,
)
from ._http import Timeouts
from ._http_errors import NOT_UNDERSTOOD, not_understood
from ._media_prep import prepare_media
from ._options import (
    CHAT_DEFAULTS,
    CLIENT_DEFAULTS,
    check_sampling,
    check_timeout,
    unknown_option_error,
)
from ._retry import Attempts, RetryPolicy, is_retryable, retry_reason
from ._stream import ResponseStream, TextStream
from ._types import (
    ChatRequest,
    MediaPart,
    Message,
    OutputSchema,
    Response,
    TextPart,
    Transcript,
    to_messages,
)
from ._waits import announce
from .keys import APIKey, KeyPool
from .providers._base import Provider
from .tools import to_tool_specs
from .usage import estimate_request_tokens, record_response

__all__ = ["RESPONSE_HOOKS", "Client", "ResponseCache", "ResponseStream", "TextStream"]

T = TypeVar("T")
CacheMode = bool | Literal["refresh"]

#: Called with every finished Response (fresh or cached), e.g. usage and cost accounting.
RESPONSE_HOOKS: list[Callable[[Response], None]] = [record_response]


class ResponseCache(Protocol):
    """What the client needs from a cache (see :mod:`llm_magics.cache`)."""

    def key_for(self, provider: Provider, request: ChatRequest) -> str: ...
    def get(self, key: str) -> Response | None: ...
    def put(self, key: str, response: Response) -> None: ...


class Prepared(NamedTuple):
    """A request built and looked up in the cache, ready for :meth:`Client._answer`."""

    request: ChatRequest
    cache_key: str | None
    hit: Response | None


class Client:
    """A model to talk to. Create with :func:`llm_magics.client`."""

    def __init__(
        self,
        provider: Provider,
        model: str,
        *,
        keys: KeyPool | None = None,
        cache: ResponseCache | None = None,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.keys = keys
        self.cache = cache
        self.retry = retry or RetryPolicy()
        self.timeouts = timeouts or Timeouts()
        self.defaults = dict(defaults or {})
        for name in self.defaults:
            if name not in CHAT_DEFAULTS and name not in CLIENT_DEFAULTS:
                raise unknown_option_error(name, "client")
        # What build_request starts from: only the defaults that are request options.
        self._chat_defaults = {k: v for k, v in self.defaults.items() if k in CHAT_DEFAULTS}

    @property
    def model_id(self) -> str:
        return f"{self.provider.name}:{self.model}" if self.provider.name != "local" else "local"

    def __repr__(self) -> str:
        return f"Client({self.model_id!r})"

    # --- building requests ---------------------------------------------------------------

    def build_request(
        self,
        prompt: Any,
        *,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: Sequence[str] | str | None = None,
        seed: int | None = None,
        tools: Sequence[Any] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        schema: Any = None,
        json_mode: bool = False,
        extra_body: dict[str, Any] | None = None,
        **unknown: Any,
    ) -> ChatRequest:
        """The request ``chat`` would send. ``extra_body`` holds fields the package does not
        know, sent as they are; any other keyword is a ConfigError, before anything is sent."""
        if unknown:
            fields = self.provider.extra_body_fields
            raise unknown_option_error(next(iter(unknown)), "chat", fields, self.provider.name)
        given = {
            "system": system,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "top_p": top_p,
            "seed": seed,
        }
        options = {**self._chat_defaults}
        options.update({k: v for k, v in given.items() if v is not None})
        check_sampling(options)
        extra = {**(options.pop("extra_body", None) or {}), **(extra_body or {})}
        request = ChatRequest(
            model=self.model,
            messages=to_messages(prompt),
            system=options.pop("system", None),
            temperature=options.pop("temperature", None),
            max_tokens=options.pop("max_tokens", None),
            top_p=options.pop("top_p", None),
            seed=options.pop("seed", None),
            stop=[stop] if isinstance(stop, str) else list(stop) if stop else None,
            tools=to_tool_specs(tools),
            tool_choice=tool_choice,
            schema=OutputSchema.from_user(schema) if schema is not None else None,
            json_mode=json_mode,
            extra=extra,
        )
        if not any(_has_content(m) for m in request.messages):
            raise errors.EmptyPromptError(
                "the prompt is empty: pass the text to send (or message dicts with content)."
            )
        if request.tools and not self.provider.supports_tools:
            raise self.provider.unsupported("tool calling")
        if request.schema and not self.provider.supports_schema:
            raise self.provider.unsupported("structured output (schema=)")
        self.provider.check_media(request)
        return request

    # --- the pipeline --------------------------------------------------------------------

    async def _call(
        self,
        op: Callable[[APIKey | None, Timeouts], Awaitable[T]],
        estimated_tokens: int = 0,
        *,
        timeout: float | None = None,
    ) -> T:
        """Run ``op`` with a key from the pool and this attempt's timeouts, retrying what is
        worth retrying. ``timeout`` (the user's ``timeout=``) bounds the whole call, every
        attempt and wait included; without it each attempt has the client's timeouts."""
        timeout = check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        tries = Attempts()
        while True:
            key = await self._acquire(estimated_tokens)
            timeouts = self.timeouts
            if deadline is not None:
                timeouts = timeouts.replace(max(deadline - time.monotonic(), 0.001))
            try:
                return await op(key, timeouts)
            except LLMError as exc:
                failure = exc
            except NOT_UNDERSTOOD as exc:
                raise not_understood(exc, self.provider.name, self.model) from exc
            if (
                deadline is not None
                and isinstance(failure, errors.TimeoutError)
                and deadline - time.monotonic() < 0.05
            ):
                # The call's own time ran out (an attempt's timeout ending early, such as a
                # connect timeout, leaves time for a retry).
                raise self._out_of_time(failure, timeout, tries) from failure
            await self._after_failure(failure, key, tries, deadline)

    def _out_of_time(
        self, exc: errors.TimeoutError, timeout: float | None, tries: Attempts
    ) -> errors.TimeoutError:
        attempts = tries.total + 1
        tried = f" ({attempts} attempts)" if attempts > 1 else ""
        return errors.TimeoutError(
            f"{self.provider.name} did not answer within timeout={timeout:g} s{tried}. Raise "
            "timeout= or try again later.",
            provider=self.provider.name,
            model=self.model,
            request=exc.request,
        )

    async def _acquire(self, estimated_tokens: int) -> APIKey | None:
        if self.keys is None:
            return None
        return await self.keys.acquire(estimated_tokens, model=self.model)

    async def _after_failure(
        self, exc: LLMError, key: APIKey | None, tries: Attempts, deadline: float | None = None
    ) -> None:
        """Decide whether a failed attempt is retried (return, after any wait) or raised."""
        if isinstance(exc, AuthenticationError) and key is not None and self.keys is not None:
            if len(self.keys) > 1:
                self.keys.auth_failed(key)
                if self.keys.has_live_keys:
                    return
            raise exc
        if not is_retryable(exc):
            raise exc
        retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
        pool = self.keys
        if isinstance(exc, RateLimitError) and pool is not None and key is not None:
            rotating = len(pool) > 1 and tries.rotations < 4 * len(pool)
            if not rotating and tries.retries >= self.retry.max_retries:
                raise exc
            wait = retry_after
            if wait is None and len(pool) == 1:
                wait = self.retry.delay(tries.retries)
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
        if tries.retries >= self.retry.max_retries:
            raise exc
        delay = self.retry.delay(tries.retries, retry_after)
        if deadline is not None and time.monotonic() + delay > deadline:
            raise exc
        tries.retries += 1
        announce(delay, f"{retry_reason(exc)}; retry {tries.retries} of {self.retry.max_retries}")
        await self.retry.sleep(delay)

    def _finish(self, response: Response, request: ChatRequest, started: float) -> Response:
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
        for hook in RESPONSE_HOOKS:
            hook(response)
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

    def _cache_key(self, request: ChatRequest, cache: CacheMode | None) -> str | None:
        if self.cache is None or cache is False:
            return None
        return self.cache.key_for(self.provider, request)

    def _cache_lookup(self, key: str | None, cache: CacheMode | None) -> Response | None:
        if key is None or cache == "refresh" or self.cache is None:
            return None
        hit = self.cache.get(key)
        if hit is not None:
            hit.cached = True
        return hit

    def _record(self, key: APIKey | None, response: Response) -> None:
        if key is not None and self.keys is not None:
            self.keys.record(key, response.usage.input_tokens, response.usage.output_tokens)

    # --- chat ----------------------------------------------------------------------------

    async def achat(
        self,
        prompt: Any,
        *,
        cache: CacheMode | None = None,
        timeout: float | None = None,
        run_tools: bool = False,
        max_tool_rounds: int = 8,
        **options: Any,
    ) -> Response:
        """Send ``prompt`` and return the whole answer as a :class:`Response`.

        With ``run_tools=True`` the functions in ``tools=`` are called as the model asks and
        their results sent back until it answers (see :func:`llm_magics.tools.run_tool_loop`).
        """
        if run_tools:
            from .tools import run_tool_loop

            return await run_tool_loop(
                self,
                prompt,
                tools=options.pop("tools", None) or [],
                max_rounds=max_tool_rounds,
                cache=cache,
                timeout=timeout,
                **options,
            )
        started = time.perf_counter()
        request = self.build_request(prompt, **options)
        cache_key = self._cache_key(request, cache)
        hit = self._cache_lookup(cache_key, cache)
        return await self._answer(request, cache_key, hit, timeout, started)

    def _prepare_many(
        self, prompts: Sequence[Any], cache: CacheMode | None, options: dict[str, Any]
    ) -> list[Prepared]:
        """What :meth:`achat` does before sending, for many prompts at once: the cache is
        asked once for all of them (the batch engine's lookahead). Raises what
        :meth:`build_request` raises."""
        requests = [self.build_request(prompt, **options) for prompt in prompts]
        keys = [self._cache_key(request, cache) for request in requests]
        get_many = getattr(self.cache, "get_many", None)
        wanted = [key for key in keys if key is not None]
        if cache == "refresh" or not wanted:
            hits: dict[str, Response] = {}
        elif get_many is not None:
            hits = get_many(wanted)
        else:
            hits = {k: r for k in wanted if (r := self._cache_lookup(k, cache)) is not None}
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

    async def _answer(
        self,
        request: ChatRequest,
        cache_key: str | None,
        hit: Response | None,
        timeout: float | None,
        started: float,
    ) -> Response:
        """The rest of :meth:`achat` once the cache has been asked."""
        if hit is not None:
            return self._finish(hit, request, started)
        # After the cache lookup, so a hit costs no download or resizing.
        request = await prepare_media(request, self.provider)

        async def attempt(key: APIKey | None, timeouts: Timeouts) -> Response:
            response = await self.provider.chat(request, key, timeouts)
            self._record(key, response)
            return response

        response = await self._call(attempt, estimate_request_tokens(request), timeout=timeout)
        self._finish(response, request, started)
        if cache_key is not None and self.cache is not None:
            self.cache.put(cache_key, response)
        return response

    def chat(self, prompt: Any, **options: Any) -> Response:
        """Blocking :meth:`achat`; works inside Jupyter."""
        return _loop.run(self.achat(prompt, **options))

    def astream(
        self,
        prompt: Any,
        *,
        cache: CacheMode | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> ResponseStream:
        """Yield text deltas as they arrive; ``.response`` holds the full Response after."""
        request = self.build_request(prompt, **options)
        return ResponseStream(self, request, cache, self.timeouts.replace(check_timeout(timeout)))

    def stream(self, prompt: Any, **options: Any) -> TextStream:
        """Blocking :meth:`astream`: iterate for text deltas, then read ``.response``."""
        return TextStream(self.astream(prompt, **options))

    # --- embeddings and audio ------------------------------------------------------------

    async def aembed(
        self,
        texts: str | Sequence[str],
        *,
        model: str | None = None,
        timeout: float | None = None,
        batch_size: int = 256,
    ) -> list[list[float]]:
        """One vector per text (a single string counts as a list of one)."""
        if not self.provider.supports_embed:
            raise self.provider.unsupported("embeddings")
        items = [texts] if isinstance(texts, str) else list(texts)
        if not all(isinstance(t, str) for t in items):
            raise ConfigError("embed() takes a string or a list of strings")
        use_model = model or self.defaults.get("embed_model") or self._embed_model()
        vectors: list[list[float]] = []
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]

            async def attempt(
                key: APIKey | None, timeouts: Timeouts, batch: list[str] = batch
            ) -> list[list[float]]:
                found, usage = await self.provider.embed(use_model, batch, key, timeouts)
                check_vectors(found, len(batch), self.provider.name, use_model)
                if key is not None and self.keys is not None:
                    self.keys.record(key, usage.input_tokens, 0)
                return found

            vectors.extend(await self._call(attempt, timeout=timeout))
        return vectors

    def _embed_model(self) -> str:
        try:
            return self.provider.default_embed_model()
        except ConfigError:
            return self.model

    def embed(self, texts: str | Sequence[str], **options: Any) -> list[list[float]]:
        return _loop.run(self.aembed(texts, **options))

    async def atranscribe(
        self,
        audio: Any,
        *,
        model: str | None = None,
        language: str | None = None,
        translate: bool = False,
        timestamps: bool = False,
        prompt: str | None = None,
        timeout: float | None = None,
    ) -> Transcript:
        """Speech to text. ``timestamps=True`` fills ``.segments`` and ``.words``."""
        if not self.provider.supports_transcribe:
            raise self.provider.unsupported(
                "transcription", "Use openai:, groq: or local for Whisper."
            )
        part = _audio_part(audio)
        use_model = model or self.provider.default_transcribe_model()

        async def attempt(key: APIKey | None, timeouts: Timeouts) -> Transcript:
            return await self.provider.transcribe(
                use_model,
                part,
                key,
                timeouts,
                language=language,
                translate=translate,
                timestamps=timestamps,
                prompt=prompt,
            )

        return await self._call(attempt, timeout=timeout)

    def transcribe(self, audio: Any, **options: Any) -> Transcript:
        return _loop.run(self.atranscribe(audio, **options))

    async def alist_models(self) -> list[str]:
        async def attempt(key: APIKey | None, timeouts: Timeouts) -> list[str]:
            return await self.provider.list_models(key, timeouts)

        return await self._call(attempt)

    def list_models(self) -> list[str]:
        return _loop.run(self.alist_models())


def _has_content(message: Message) -> bool:
    return bool(
        message.tool_calls
        or message.role == "tool"
        or any(not isinstance(p, TextPart) or p.text for p in message.parts)
    )


def check_vectors(vectors: Any, expected: int, provider: str, model: str) -> None:
    """One flat list of numbers per text, or a ProviderError saying what came instead."""
    shape = ""
    if not isinstance(vectors, list) or len(vectors) != expected:
        shape = f"{len(vectors) if isinstance(vectors, list) else type(vectors).__name__} vectors for {expected} texts"
    elif not all(
        isinstance(v, list) and v and all(isinstance(x, float | int) for x in v) for v in vectors
    ):
        shape = "something other than one flat list of numbers per text (per-token vectors?)"
    if shape:
        raise errors.ProviderError(
            f"{provider} returned {shape} from its embeddings endpoint for {model}. A llama.cpp "
            "server needs --embeddings --pooling mean; otherwise check the model is an "
            "embedding model.",
            provider=provider,
            model=model,
        )


def _audio_part(audio: Any) -> MediaPart:
    if isinstance(audio, MediaPart):
        return audio
    from .media import as_media_part

    part = as_media_part(audio, kind="audio")
    if part.kind != "audio":
        raise ConfigError(f"transcribe() needs audio; got {part.kind} ({part.mime_type})")
    return part
