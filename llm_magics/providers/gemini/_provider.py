"""The Gemini provider: its capabilities, headers and the endpoints it calls (chat, stream,
embeddings, transcription by prompting, models)."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

from ..._core.batch import BatchItem, BatchJob
from ..._core.errors import ProviderError
from ..._core.secrets import APIKey, SecretHeaders
from ..._core.types import ChatRequest, MediaPart, Message, Response, TextPart, Transcript, Usage
from ..._runtime.http import Timeouts, iter_sse, request_json, stream_request
from ..._runtime.http import decode_event as _decode
from ..._runtime.http_errors import ErrorContext, truncated_stream_error
from ..base import Provider
from . import _batch
from ._body import build_body
from ._calls import parse_calls
from ._parse import check_blocked, embedding_values, finish_reason, stream_error, usage_of

_MAX_BATCH = 100  # batchEmbedContents takes at most 100 requests


class GeminiProvider(Provider):
    protocol: ClassVar[str] = "gemini"
    supports_stream = True
    supports_tools = True
    supports_schema = True
    supports_embed = True
    supports_transcribe = True
    speaks_batch = True
    media_kinds = frozenset({"image", "audio", "document"})
    context_markers = ("input token count", "exceeds the maximum number of tokens")
    auth_markers: ClassVar[tuple[str, ...]] = (
        "api key not valid",
        "api_key_invalid",
        "api key expired",
    )

    def __init__(self, name: str, base_url: str, **kwargs: Any) -> None:
        super().__init__(name, base_url, **kwargs)
        self._signatures: OrderedDict[str, str] = OrderedDict()

    def error_context(self, model: str | None, key: APIKey | None) -> ErrorContext:
        ctx = super().error_context(model, key)
        return dataclasses.replace(ctx, auth_markers=self.auth_markers)

    def url(self, model: str, method: str) -> str:
        name = model.removeprefix("models/")
        return f"{self.base_url}/v1beta/models/{quote(name, safe='-._~@')}:{method}"

    # --- request building ----------------------------------------------------------------

    def headers(self, key: APIKey | None) -> dict[str, str]:
        out = SecretHeaders({"Accept": "application/json", **self.extra_headers})
        if key is not None:
            out["x-goog-api-key"] = key.reveal()
        return out

    def body(self, request: ChatRequest) -> dict[str, Any]:
        self.check_media(request)
        return build_body(self, request, self._signatures)

    # --- chat ----------------------------------------------------------------------------

    async def chat(self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts) -> Response:
        data, _ = await request_json(
            "POST",
            self.url(request.model, "generateContent"),
            ctx=self.error_context(request.model, key),
            headers=self.headers(key),
            json_body=self.body(request),
            timeout=timeouts,
            transport=self.transport,
        )
        return self.parse_response(data, request.model)

    def parse_response(self, data: Mapping[str, Any], model: str) -> Response:
        candidates = data.get("candidates") or []
        if not candidates:
            check_blocked(data, self.name, model)
        candidate = candidates[0] if candidates else {}
        parts = (candidate.get("content") or {}).get("parts") or []
        text = "".join(p["text"] for p in parts if "text" in p and not p.get("thought"))
        calls = parse_calls(parts, data.get("responseId"), self._signatures)
        return Response(
            text=text,
            model=data.get("modelVersion") or model,
            provider=self.name,
            usage=usage_of(data.get("usageMetadata")),
            finish_reason=finish_reason(candidate.get("finishReason"), calls),
            tool_calls=calls,
            raw=dict(data),
        )

    async def stream(
        self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts
    ) -> AsyncIterator[str | Response]:
        ctx = self.error_context(request.model, key)
        text: list[str] = []
        parts: list[Mapping[str, Any]] = []
        usage: Mapping[str, Any] | None = None
        finish: str | None = None
        model = request.model
        response_id = None
        async with stream_request(
            "POST",
            self.url(request.model, "streamGenerateContent"),
            ctx=ctx,
            headers=SecretHeaders(self.headers(key), Accept="text/event-stream"),
            json_body=self.body(request),
            params={"alt": "sse"},
            timeout=timeouts,
            transport=self.transport,
        ) as response:
            async for _event, data in iter_sse(response, ctx, lambda: "".join(text)):
                chunk = _decode(data, ctx)
                if "error" in chunk and not chunk.get("candidates"):
                    raise stream_error(chunk, response, ctx, "".join(text))
                candidates = chunk.get("candidates") or []
                if not candidates and not text:
                    check_blocked(chunk, self.name, request.model)
                model = chunk.get("modelVersion") or model
                response_id = chunk.get("responseId") or response_id
                usage = chunk.get("usageMetadata") or usage
                candidate = candidates[0] if candidates else {}
                finish = candidate.get("finishReason") or finish
                for part in (candidate.get("content") or {}).get("parts") or []:
                    if "text" in part and not part.get("thought"):
                        if part["text"]:
                            text.append(part["text"])
                            yield part["text"]
                    elif "functionCall" in part:
                        parts.append(part)
        if finish is None:
            raise truncated_stream_error(ctx, "".join(text), "finishReason")
        calls = parse_calls(parts, response_id, self._signatures)
        yield Response(
            text="".join(text),
            model=model,
            provider=self.name,
            usage=usage_of(usage),
            finish_reason=finish_reason(finish, calls),
            tool_calls=calls,
            raw={"responseId": response_id, "model": model, "streamed": True, "usage": usage},
        )

    # --- embeddings, audio, models -------------------------------------------------------

    def default_embed_model(self) -> str:
        return "gemini-embedding-001"

    async def embed(
        self, model: str, texts: Sequence[str], key: APIKey | None, timeouts: Timeouts
    ) -> tuple[list[list[float]], Usage]:
        ctx = self.error_context(model, key)
        if len(texts) == 1:
            data, _ = await request_json(
                "POST",
                self.url(model, "embedContent"),
                ctx=ctx,
                headers=self.headers(key),
                json_body={"content": {"parts": [{"text": texts[0]}]}},
                timeout=timeouts,
                transport=self.transport,
            )
            return [embedding_values(data.get("embedding"))], Usage()
        qualified = "models/" + model.removeprefix("models/")
        vectors: list[list[float]] = []
        for start in range(0, len(texts), _MAX_BATCH):
            requests = [
                {"model": qualified, "content": {"parts": [{"text": text}]}}
                for text in texts[start : start + _MAX_BATCH]
            ]
            data, _ = await request_json(
                "POST",
                self.url(model, "batchEmbedContents"),
                ctx=ctx,
                headers=self.headers(key),
                json_body={"requests": requests},
                timeout=timeouts,
                transport=self.transport,
            )
            found = [embedding_values(e) for e in data.get("embeddings") or []]
            if len(found) != len(requests):
                raise ProviderError(
                    f"{self.name} returned {len(found)} embeddings for {len(requests)} texts",
                    provider=self.name,
                    model=model,
                )
            vectors.extend(found)
        return vectors, Usage()

    def default_transcribe_model(self) -> str:
        return self.default_model or "gemini-2.5-flash"

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
        """Speech to text by asking the model itself, with the audio inline."""
        if timestamps:
            raise self.unsupported(
                "transcription timestamps", "Use openai:, groq: or local (Whisper) for them."
            )
        if translate:
            instruction = "Translate the speech in this audio into English."
        else:
            instruction = "Transcribe the speech in this audio verbatim, in its own language."
            if language:
                instruction += f" The speech is in the language with code {language!r}."
        instruction += (
            " Reply with that text only: no introduction, no timestamps, no speaker labels, "
            "no notes."
        )
        if prompt:
            instruction += f" Context and spelling hints: {prompt}"
        request = ChatRequest(
            model=model, messages=[Message("user", [TextPart(instruction), audio])], temperature=0
        )
        response = await self.chat(request, key, timeouts)
        return Transcript(response.text.strip(), language="en" if translate else language)

    async def list_models(self, key: APIKey | None, timeouts: Timeouts) -> list[str]:
        names: list[str] = []
        params = {"pageSize": "1000"}
        while True:
            data, _ = await request_json(
                "GET",
                f"{self.base_url}/v1beta/models",
                ctx=self.error_context(None, key),
                headers=self.headers(key),
                params=params,
                timeout=timeouts,
                transport=self.transport,
            )
            for m in data.get("models") or []:
                if m.get("name"):
                    names.append(str(m["name"]).removeprefix("models/"))
            token = data.get("nextPageToken")
            if not token:
                return sorted(names)
            params = {"pageSize": "1000", "pageToken": str(token)}

    # --- batch mode (inline requests) ----------------------------------------------------

    async def batch_submit(
        self, items: Sequence[tuple[str, ChatRequest]], key: APIKey | None, timeouts: Timeouts
    ) -> BatchJob:
        model = items[0][1].model if items else self.default_model or ""
        data, _ = await request_json(
            "POST",
            self.url(model, "batchGenerateContent"),
            json_body=_batch.submission(items, self.body),
            **self.http_options(key, timeouts),
        )
        return _batch.job_of(data)

    async def batch_status(self, job_id: str, key: APIKey | None, timeouts: Timeouts) -> BatchJob:
        data, _ = await request_json(
            "GET", f"{self.base_url}/v1beta/{job_id}", **self.http_options(key, timeouts)
        )
        return _batch.job_of(data)

    async def batch_cancel(self, job_id: str, key: APIKey | None, timeouts: Timeouts) -> BatchJob:
        await request_json(
            "POST", f"{self.base_url}/v1beta/{job_id}:cancel", **self.http_options(key, timeouts)
        )
        return await self.batch_status(job_id, key, timeouts)

    async def batch_results(
        self,
        job: BatchJob,
        requests: Mapping[str, ChatRequest],
        key: APIKey | None,
        timeouts: Timeouts,
    ) -> list[BatchItem]:
        done = await self.batch_status(job.id, key, timeouts)  # the answers travel inline
        return _batch.items_of(done, self.parse_response, requests)
