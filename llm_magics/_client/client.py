"""The client users hold: one provider + one model + defaults, with the same behaviour around
every provider: retries, key rotation, the response cache, schema parsing, usage hooks.

Sync methods run the async ones on the private loop thread (:mod:`llm_magics._runtime.loop`), so they
work inside a running Jupyter kernel. A Client is safe to share between threads.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from .._core import errors
from .._core.errors import ConfigError
from .._core.events import StreamEvent
from .._core.options import (
    CHAT_DEFAULTS,
    CLIENT_DEFAULTS,
    check_sampling,
    check_timeout,
    unknown_option_error,
)
from .._core.secrets import APIKey
from .._core.types import (
    ChatRequest,
    MediaPart,
    Message,
    OutputSchema,
    PromptCache,
    Response,
    TextPart,
    Transcript,
)
from .._media.objects import as_media_part
from .._runtime import loop
from .._runtime.http import Timeouts
from .._runtime.retry import RetryPolicy
from ..providers.base import Provider
from .inputs import fill_template, to_messages
from .keys import KeyPool
from .pipeline import CacheMode, Pipeline, Prepared, ResponseCache
from .stream import ResponseStream, TextStream
from .tool_loop import run_events
from .tool_registry import ToolRegistry
from .tools import run_tool_loop, to_tool_specs

__all__ = ["CacheMode", "Client", "ResponseCache", "ResponseStream", "TextStream"]


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
        #: How every request of this client travels (cache, keys, retries, accounting); it
        #: holds the provider, model, key pool, cache, retry policy and timeouts read below.
        self.pipeline = Pipeline(
            provider,
            model,
            f"{provider.name}:{model}" if provider.name != "local" else "local",
            keys=keys,
            cache=cache,
            retry=retry or RetryPolicy(),
            timeouts=timeouts or Timeouts(),
        )
        self.defaults = dict(defaults or {})
        for name in self.defaults:
            if name not in CHAT_DEFAULTS and name not in CLIENT_DEFAULTS:
                raise unknown_option_error(name, "client")
        # What build_request starts from: only the defaults that are request options.
        self._chat_defaults = {k: v for k, v in self.defaults.items() if k in CHAT_DEFAULTS}

    @property
    def provider(self) -> Provider:
        return self.pipeline.provider

    @property
    def model(self) -> str:
        return self.pipeline.model

    @property
    def model_id(self) -> str:
        return self.pipeline.model_id

    @property
    def keys(self) -> KeyPool | None:
        return self.pipeline.keys

    @property
    def cache(self) -> ResponseCache | None:
        return self.pipeline.cache

    @property
    def retry(self) -> RetryPolicy:
        return self.pipeline.retry

    @property
    def timeouts(self) -> Timeouts:
        return self.pipeline.timeouts

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
        prompt_cache: PromptCache | None = None,
        **unknown: Any,
    ) -> ChatRequest:
        """The request ``chat`` would send. ``extra_body`` holds fields the package does not
        know, sent as they are; any other keyword is a ConfigError, before anything is sent.
        A template prompt (``lm.Template``) takes its variables from the other keywords.
        ``prompt_cache``: a hint for the provider's prompt cache (a DataFrame map gives one,
        :func:`llm_magics._client.prompt_cache.prompt_cache_for`)."""
        prompt, unknown = fill_template(prompt, unknown)
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
            prompt_cache=prompt_cache,
        )
        self._check(request)
        return request

    def _check(self, request: ChatRequest) -> None:
        """Refuse, before anything is sent, what the request asks and the provider lacks."""
        if not any(_has_content(m) for m in request.messages):
            raise errors.EmptyPromptError(
                "the prompt is empty: pass the text to send (or message dicts with content)."
            )
        if request.tools and not self.provider.supports_tools:
            raise self.provider.unsupported("tool calling")
        if request.schema and not self.provider.supports_schema:
            raise self.provider.unsupported("structured output (schema=)")
        self.provider.check_media(request)

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
        their results sent back until it answers (see :func:`llm_magics._client.tools.run_tool_loop`).
        ``prompt`` may be a template (``lm.Template``): its variables are keywords too,
        ``c.chat(t, code="...", temperature=0)``.
        """
        prompt, options = fill_template(prompt, options)
        if run_tools:
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
        pipeline = self.pipeline
        prepared = pipeline.prepare(self.build_request(prompt, **options), cache)
        return await pipeline.answer(prepared, timeout, started)

    def prepare_many(
        self, prompts: Sequence[Any], cache: CacheMode | None, options: dict[str, Any]
    ) -> list[Prepared]:
        """What :meth:`achat` does before sending, for many prompts at once, asking the cache
        once for all of them (the fan-out engine's lookahead). Raises what
        :meth:`build_request` raises."""
        requests = [self.build_request(prompt, **options) for prompt in prompts]
        return self.pipeline.prepare_many(requests, cache)

    def chat(self, prompt: Any, **options: Any) -> Response:
        """Blocking :meth:`achat`; works inside Jupyter."""
        return loop.run(self.achat(prompt, **options))

    def astream(
        self,
        prompt: Any,
        *,
        cache: CacheMode | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> ResponseStream:
        """Yield text deltas as they arrive; ``.response`` holds the full Response after."""
        prepared = self.pipeline.prepare(self.build_request(prompt, **options), cache)
        return ResponseStream(
            self.pipeline, prepared, self.timeouts.replace(check_timeout(timeout))
        )

    def stream(self, prompt: Any, **options: Any) -> TextStream:
        """Blocking :meth:`astream`: iterate for text deltas, then read ``.response``."""
        return TextStream(self.astream(prompt, **options))

    def aevents(
        self,
        prompt: Any,
        *,
        tools: Sequence[Any] | None = None,
        run_tools: bool = True,
        max_turns: int = 10,
        parallel_tool_execution: bool = True,
        tool_timeout: float | None = None,
        **options: Any,
    ) -> AsyncIterator[StreamEvent]:
        """:class:`~llm_magics._core.events.StreamEvent` objects as they happen: text
        deltas, each tool call and its result (the functions in ``tools=`` run, unless
        ``run_tools=False``), usage per model turn, then ``done`` or ``error``. See
        :mod:`llm_magics._client.tool_loop`."""
        prompt, options = fill_template(prompt, options)
        return run_events(
            self,
            to_messages(prompt),
            tools=ToolRegistry(tools) if tools else None,
            execute=run_tools,
            max_turns=max_turns,
            parallel=parallel_tool_execution,
            tool_timeout=tool_timeout,
            **options,
        )

    def events(self, prompt: Any, **options: Any) -> Iterator[StreamEvent]:
        """Blocking :meth:`aevents` (Ctrl-C or leaving the loop stops the call)."""
        return loop.iterate(self.aevents(prompt, **options))

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

            vectors.extend(await self.pipeline.call(attempt, timeout=timeout))
        return vectors

    def _embed_model(self) -> str:
        try:
            return self.provider.default_embed_model()
        except ConfigError:
            return self.model

    def embed(self, texts: str | Sequence[str], **options: Any) -> list[list[float]]:
        return loop.run(self.aembed(texts, **options))

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

        return await self.pipeline.call(attempt, timeout=timeout)

    def transcribe(self, audio: Any, **options: Any) -> Transcript:
        return loop.run(self.atranscribe(audio, **options))

    async def alist_models(self) -> list[str]:
        async def attempt(key: APIKey | None, timeouts: Timeouts) -> list[str]:
            return await self.provider.list_models(key, timeouts)

        return await self.pipeline.call(attempt)

    def list_models(self) -> list[str]:
        return loop.run(self.alist_models())


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
    part = as_media_part(audio, kind="audio")
    if part.kind != "audio":
        raise ConfigError(f"transcribe() needs audio; got {part.kind} ({part.mime_type})")
    return part
