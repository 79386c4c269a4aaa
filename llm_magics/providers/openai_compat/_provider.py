"""The OpenAI-compatible provider: its capabilities, the vendor quirks it follows, and the
endpoints it calls (chat, stream, embeddings, Whisper transcription, models)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

from ..._core.batch import BatchItem, BatchJob
from ..._core.errors import ProviderError
from ..._core.secrets import APIKey, SecretHeaders
from ..._core.types import (
    ChatRequest,
    MediaPart,
    Response,
    ToolCall,
    Transcript,
    Usage,
    attach_raw_json,
)
from ..._runtime.http import Timeouts, iter_sse, request_json, stream_request
from ..._runtime.http import decode_event as _decode
from ..base import Provider
from . import _batch
from ._body import build_body
from ._parse import FINISH_REASONS, parse_completion, stream_error, usage_of, vector


class OpenAICompatProvider(Provider):
    protocol: ClassVar[str] = "openai"
    supports_stream = True
    supports_tools = True
    supports_schema = True
    supports_embed = True
    supports_transcribe = True
    speaks_batch = True
    media_kinds = frozenset({"image"})
    context_markers = ("context_length_exceeded", "maximum context length")

    def __init__(self, name: str, base_url: str, **kwargs: Any) -> None:
        super().__init__(name, base_url, **kwargs)
        # The vendor's departures from the protocol (see providers.catalog.Quirks).
        self.max_tokens_field = self.quirks.max_tokens_field
        self.stream_usage_option = self.quirks.stream_usage_option
        self.embed_base64 = self.quirks.embed_encoding == "base64"
        # Schemas go as OpenAI's json_schema until a server says it takes json_object only.
        self.schema_in_json_object = False

    # --- request building ----------------------------------------------------------------

    def headers(self, key: APIKey | None) -> dict[str, str]:
        out = SecretHeaders({"Accept": "application/json", **self.extra_headers})
        if key is not None:
            out["Authorization"] = f"Bearer {key.reveal()}"
        return out

    def body(self, request: ChatRequest, *, stream: bool = False) -> dict[str, Any]:
        self.check_media(request)
        return build_body(
            request,
            stream=stream,
            max_tokens_field=self.max_tokens_field,
            schema_in_json_object=self.schema_in_json_object,
            stream_usage_option=self.stream_usage_option,
            unsupported=self.unsupported,
            prompt_cache_key_field=self.quirks.prompt_cache_key_field,
        )

    # --- chat ----------------------------------------------------------------------------

    def _switch_schema_style(self, request: ChatRequest, exc: ProviderError) -> bool:
        """True (and from now on send schemas as llama.cpp takes them) when a server refused
        ``response_format`` ``json_schema`` saying it takes ``json_object``: llama.cpp's
        server does, with HTTP 500, and builds its grammar from a ``schema`` field instead."""
        message = str(exc)
        if (
            request.schema is None
            or self.schema_in_json_object
            or "response_format" not in message
            or "json_object" not in message
        ):
            return False
        self.schema_in_json_object = True
        return True

    async def chat(self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts) -> Response:
        try:
            return await self._chat_once(request, key, timeouts)
        except ProviderError as exc:
            if not self._switch_schema_style(request, exc):
                raise
        return await self._chat_once(request, key, timeouts)

    async def _chat_once(
        self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts
    ) -> Response:
        data, reply = await request_json(
            "POST",
            f"{self.base_url}/chat/completions",
            ctx=self.error_context(request.model, key),
            headers=self.headers(key),
            json_body=self.body(request),
            timeout=timeouts,
            transport=self.transport,
        )
        # parse_response keeps ``data`` as ``raw``: the body is its JSON text.
        return attach_raw_json(self.parse_response(data, request.model), reply.content)

    def parse_response(self, data: dict[str, Any], model: str) -> Response:
        return parse_completion(data, model, self.name)

    async def stream(
        self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts
    ) -> AsyncIterator[str | Response]:
        started = False
        try:
            async for item in self._stream_once(request, key, timeouts):
                started = True
                yield item
            return
        except ProviderError as exc:
            if started or not self._switch_schema_style(request, exc):
                raise
        async for item in self._stream_once(request, key, timeouts):
            yield item

    async def _stream_once(
        self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts
    ) -> AsyncIterator[str | Response]:
        ctx = self.error_context(request.model, key)
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        usage: dict[str, Any] | None = None
        finish: str | None = None
        model = request.model
        last: dict[str, Any] = {}
        async with stream_request(
            "POST",
            f"{self.base_url}/chat/completions",
            ctx=ctx,
            headers=SecretHeaders(self.headers(key), Accept="text/event-stream"),
            json_body=self.body(request, stream=True),
            timeout=timeouts,
            transport=self.transport,
        ) as response:
            async for _event, data in iter_sse(response, ctx, lambda: "".join(text)):
                if data.strip() == "[DONE]":
                    break
                chunk = _decode(data, ctx)
                if "error" in chunk and not chunk.get("choices"):
                    # Servers report failures after the 200 as an error object in the stream.
                    raise stream_error(chunk, response, ctx, "".join(text))
                last = chunk
                model = chunk.get("model") or model
                usage = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage") or usage
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    piece = delta.get("content")
                    if piece:
                        text.append(piece)
                        yield piece
                    for tc in delta.get("tool_calls") or []:
                        slot = calls.setdefault(
                            tc.get("index", 0), {"id": "", "name": "", "args": ""}
                        )
                        slot["id"] = tc.get("id") or slot["id"]
                        fn = tc.get("function") or {}
                        slot["name"] = fn.get("name") or slot["name"]
                        slot["args"] += fn.get("arguments") or ""
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
        yield Response(
            text="".join(text),
            model=model,
            provider=self.name,
            usage=usage_of(usage),
            finish_reason=FINISH_REASONS.get(finish or "", finish),
            tool_calls=[
                ToolCall.from_raw(c["id"], c["name"], c["args"]) for _, c in sorted(calls.items())
            ],
            raw={"id": last.get("id"), "model": model, "streamed": True, "usage": usage},
        )

    # --- embeddings, audio, models -------------------------------------------------------

    def default_embed_model(self) -> str:
        return self.quirks.default_embed_model or super().default_embed_model()

    async def embed(
        self, model: str, texts: Sequence[str], key: APIKey | None, timeouts: Timeouts
    ) -> tuple[list[list[float]], Usage]:
        body: dict[str, Any] = {"model": model, "input": list(texts)}
        if self.embed_base64:
            body["encoding_format"] = "base64"
        data, _ = await request_json(
            "POST",
            f"{self.base_url}/embeddings",
            ctx=self.error_context(model, key),
            headers=self.headers(key),
            json_body=body,
            timeout=timeouts,
            transport=self.transport,
        )
        rows = sorted(data.get("data") or [], key=lambda d: d.get("index", 0))
        vectors = [vector(r["embedding"]) for r in rows]
        return vectors, usage_of(data.get("usage"))

    def default_transcribe_model(self) -> str:
        return self.quirks.default_transcribe_model

    async def transcribe(
        self,
        model: str,
        audio: MediaPart,
        key: APIKey | None,
        timeouts: Timeouts,
        *,
        language: str | None = None,
        translate: bool = False,
        timestamps: bool = False,
        prompt: str | None = None,
    ) -> Transcript:
        if audio.data is None:
            raise self.unsupported("audio by URL", "Pass the audio as a file, bytes or array.")
        form: dict[str, Any] = {
            "model": model,
            "response_format": "verbose_json" if timestamps else "json",
        }
        if language and not translate:
            form["language"] = language
        if prompt:
            form["prompt"] = prompt
        if timestamps:
            form["timestamp_granularities[]"] = ["segment", "word"]
        endpoint = "translations" if translate else "transcriptions"
        ext = audio.mime_type.split("/")[-1].replace("x-", "").replace("mpeg", "mp3")
        filename = audio.filename or f"audio.{ext}"
        data, _ = await request_json(
            "POST",
            f"{self.base_url}/audio/{endpoint}",
            ctx=self.error_context(model, key),
            headers=self.headers(key),
            data=form,
            files={"file": (filename, audio.data, audio.mime_type)},
            timeout=timeouts,
            transport=self.transport,
        )
        return Transcript(
            str(data.get("text", "")).strip(),
            segments=list(data.get("segments") or []),
            words=list(data.get("words") or []),
            language=data.get("language"),
            duration=data.get("duration"),
        )

    async def list_models(self, key: APIKey | None, timeouts: Timeouts) -> list[str]:
        data, _ = await request_json(
            "GET",
            f"{self.base_url}/models",
            ctx=self.error_context(None, key),
            headers=self.headers(key),
            timeout=timeouts,
            transport=self.transport,
        )
        return sorted(str(m.get("id")) for m in data.get("data") or [])

    # --- Batch API (OpenAI's /files + /batches; Groq's copy of it) ------------------------

    async def batch_submit(
        self, items: Sequence[tuple[str, ChatRequest]], key: APIKey | None, timeouts: Timeouts
    ) -> BatchJob:
        policy = self.batch_policy
        if policy is None:
            return await super().batch_submit(items, key, timeouts)
        content = _batch.input_file(items, self.body)
        return await _batch.submit(
            self.base_url, content, policy.window, **self.http_options(key, timeouts)
        )

    async def batch_status(self, job_id: str, key: APIKey | None, timeouts: Timeouts) -> BatchJob:
        return await _batch.retrieve(self.base_url, job_id, **self.http_options(key, timeouts))

    async def batch_cancel(self, job_id: str, key: APIKey | None, timeouts: Timeouts) -> BatchJob:
        return await _batch.retrieve(
            self.base_url, job_id, cancel=True, **self.http_options(key, timeouts)
        )

    async def batch_results(
        self,
        job: BatchJob,
        requests: Mapping[str, ChatRequest],
        key: APIKey | None,
        timeouts: Timeouts,
    ) -> list[BatchItem]:
        def parse(body: dict[str, Any], request: ChatRequest) -> Response:
            return self.parse_response(body, request.model)

        return await _batch.read_results(
            self.base_url, job, parse, requests, **self.http_options(key, timeouts)
        )
