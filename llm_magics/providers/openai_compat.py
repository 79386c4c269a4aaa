"""The OpenAI wire protocol: OpenAI itself, Groq, Cerebras, llama.cpp / vLLM / LM Studio servers
and any other OpenAI-compatible base URL.

Endpoints: ``/chat/completions`` (JSON and SSE streaming with usage, tools, JSON mode and
JSON-schema output), ``/embeddings`` (base64 float32 decoding), ``/audio/transcriptions`` and
``/audio/translations`` (Whisper), ``/models``.
"""

from __future__ import annotations

import array
import base64
import json
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

from .._core.errors import ProviderError
from .._core.secrets import APIKey, SecretHeaders
from .._core.types import (
    ChatRequest,
    MediaPart,
    Message,
    Response,
    TextPart,
    ToolCall,
    Transcript,
    Usage,
    attach_raw_json,
)
from .._runtime.http import Timeouts, iter_sse, request_json, stream_request
from .._runtime.http import decode_event as _decode
from .._runtime.http_errors import error_from_stream_event
from .base import Provider

__all__ = ["OpenAICompatProvider"]

_FINISH = {"tool_calls": "tool_calls", "function_call": "tool_calls"}
_AUDIO_FORMATS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
}


class OpenAICompatProvider(Provider):
    protocol: ClassVar[str] = "openai"
    supports_stream = True
    supports_tools = True
    supports_schema = True
    supports_embed = True
    supports_transcribe = True
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
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend(self._message(m) for m in request.messages)
        body: dict[str, Any] = {"model": request.model, "messages": messages}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body[self.max_tokens_field] = request.max_tokens
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop"] = request.stop
        if request.seed is not None:
            body["seed"] = request.seed
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
            if request.tool_choice is not None:
                body["tool_choice"] = _tool_choice(request.tool_choice)
        if request.schema is not None and self.schema_in_json_object:
            body["response_format"] = {"type": "json_object", "schema": request.schema.json_schema}
        elif request.schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": _schema_name(request.schema.name),
                    "schema": request.schema.json_schema,
                },
            }
        elif request.json_mode:
            body["response_format"] = {"type": "json_object"}
        if stream:
            body["stream"] = True
            if self.stream_usage_option:
                body["stream_options"] = {"include_usage": True}
        body.update(request.extra)
        return body

    def _message(self, m: Message) -> dict[str, Any]:
        if m.role == "tool":
            return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.text}
        out: dict[str, Any] = {"role": m.role}
        if isinstance(m.content, str) or all(isinstance(p, TextPart) for p in m.content):
            out["content"] = m.text if not isinstance(m.content, str) else m.content
        else:
            out["content"] = [self._part(p) for p in m.content]
        if m.role == "assistant" and m.tool_calls:
            out["tool_calls"] = [
                {
                    "id": t.id,
                    "type": "function",
                    "function": {"name": t.name, "arguments": json.dumps(t.arguments)},
                }
                for t in m.tool_calls
            ]
            if not out["content"]:
                out["content"] = None
        if m.name and m.role in ("user", "system"):
            out["name"] = m.name
        return out

    def _part(self, p: TextPart | MediaPart) -> dict[str, Any]:
        if isinstance(p, TextPart):
            return {"type": "text", "text": p.text}
        if p.kind == "image":
            url = p.url if p.data is None else p.data_url()
            return {"type": "image_url", "image_url": {"url": url}}
        if p.kind == "audio":
            fmt = _AUDIO_FORMATS.get(p.mime_type)
            if fmt is None or p.data is None:
                raise self.unsupported(
                    f"audio as {p.mime_type}", "Chat audio input takes wav or mp3 bytes."
                )
            return {"type": "input_audio", "input_audio": {"data": p.b64(), "format": fmt}}
        return {
            "type": "file",
            "file": {"filename": p.filename or "document.pdf", "file_data": p.data_url()},
        }

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
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ValueError("the answer has no choices")
        choice: dict[str, Any] = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            raise ValueError("choices[0] has no message")
        calls = [
            ToolCall.from_raw(
                tc.get("id", ""), tc["function"]["name"], tc["function"].get("arguments")
            )
            for tc in message.get("tool_calls") or []
        ]
        finish: Any = choice.get("finish_reason")
        return Response(
            text=message.get("content") or "",
            model=data.get("model") or model,
            provider=self.name,
            usage=_usage(data.get("usage")),
            finish_reason=_FINISH.get(finish, finish),
            tool_calls=calls,
            raw=data,
        )

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
                    error = chunk.get("error")
                    code = error.get("code") if isinstance(error, dict) else None
                    status = code if isinstance(code, int) and 400 <= code <= 599 else 500
                    raise error_from_stream_event(chunk, status, response, ctx, "".join(text))
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
            usage=_usage(usage),
            finish_reason=_FINISH.get(finish or "", finish),
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
        vectors = [_vector(r["embedding"]) for r in rows]
        return vectors, _usage(data.get("usage"))

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


def _usage(u: dict[str, Any] | None) -> Usage:
    if not u:
        return Usage()
    details = u.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=int(u.get("prompt_tokens") or 0),
        output_tokens=int(u.get("completion_tokens") or 0),
        cached_input_tokens=int(details.get("cached_tokens") or 0),
    )


def _vector(embedding: Any) -> list[float]:
    if isinstance(embedding, str):
        floats = array.array("f")
        floats.frombytes(base64.b64decode(embedding))
        if sys.byteorder != "little":
            floats.byteswap()
        return floats.tolist()
    if isinstance(embedding, list) and embedding and isinstance(embedding[0], list):
        return embedding  # per-token vectors (llama.cpp without pooling): the client says so
    return [float(x) for x in embedding]


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str) and choice not in ("auto", "none", "required"):
        return {"type": "function", "function": {"name": choice}}
    return choice


def _schema_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64]
    return cleaned or "output"
