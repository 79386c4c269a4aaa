"""The Gemini API (Google AI Studio, v1beta): ``models/{model}:generateContent``,
``:streamGenerateContent?alt=sse``, ``:embedContent``, ``:batchEmbedContents`` and ``models``.

The key travels in the ``x-goog-api-key`` header, never in the URL query: URLs end up in
exception messages and logs.

Wire notes:

* JSON is camelCase; roles are ``user`` and ``model``; the system prompt is
  ``systemInstruction``; tool calls are ``functionCall`` parts and tool results
  ``functionResponse`` parts (matched by function name, so a result message without a name
  borrows it from the call with the same id earlier in the history).
* Structured output and tool parameters use ``responseJsonSchema`` / ``parametersJsonSchema``,
  which take ordinary JSON Schema (``$ref``, ``anyOf``, ``additionalProperties``...); the older
  ``responseSchema`` / ``parameters`` take only an OpenAPI subset and would need converting.
* Gemini gives function calls no id: one is derived from the call itself, so it is stable.
  Thinking models sign their function calls (``thoughtSignature``) and Gemini 3 refuses a
  history whose call lost its signature; the signatures of recent calls are kept, by call id,
  and sent back with them.
* Audio is taken inline, which is also how :meth:`GeminiProvider.transcribe` works.
* A bad key is a 400 INVALID_ARGUMENT "API key not valid": ``auth_markers`` make it an
  AuthenticationError; a 429 names its wait in a RetryInfo detail of the body.

Thread safety: the signature memory is only touched from the event loop running the call.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import mimetypes
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from .._core.errors import BadRequestError, LLMError, ProviderError
from .._core.secrets import APIKey, SecretHeaders
from .._core.types import (
    ChatRequest,
    MediaPart,
    Message,
    Part,
    Response,
    TextPart,
    ToolCall,
    Transcript,
    Usage,
)
from .._runtime.http import Timeouts, iter_sse, request_json, stream_request
from .._runtime.http import decode_event as _decode
from .._runtime.http_errors import ErrorContext, error_from_stream_event, truncated_stream_error
from .base import Provider

__all__ = ["GeminiProvider"]

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "LANGUAGE": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "OTHER": "other",
}
_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY", "any": "ANY"}
_CALL_PREFIX = "gcall_"  # ids this module made up; never sent back as Gemini ids
_MAX_BATCH = 100  # batchEmbedContents takes at most 100 requests
_MAX_SIGNATURES = 512


class GeminiProvider(Provider):
    protocol: ClassVar[str] = "gemini"
    supports_stream = True
    supports_tools = True
    supports_schema = True
    supports_embed = True
    supports_transcribe = True
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
        body: dict[str, Any] = {"contents": self._contents(request.messages)}
        systems = [request.system] if request.system else []
        systems += [m.text for m in request.messages if m.role == "system" and m.text]
        if systems:
            body["systemInstruction"] = {"parts": [{"text": "\n\n".join(systems)}]}
        config: dict[str, Any] = {}
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.max_tokens is not None:
            config["maxOutputTokens"] = request.max_tokens
        if request.top_p is not None:
            config["topP"] = request.top_p
        if request.stop:
            config["stopSequences"] = list(request.stop)
        if request.seed is not None:
            config["seed"] = request.seed
        if request.schema is not None:
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = request.schema.json_schema
        elif request.json_mode:
            config["responseMimeType"] = "application/json"
        if config:
            body["generationConfig"] = config
        if request.tools:
            declarations = []
            for t in request.tools:
                declaration: dict[str, Any] = {"name": t.name}
                if t.description:
                    declaration["description"] = t.description
                if t.parameters:
                    declaration["parametersJsonSchema"] = t.parameters
                declarations.append(declaration)
            body["tools"] = [{"functionDeclarations": declarations}]
            if request.tool_choice is not None:
                body["toolConfig"] = {"functionCallingConfig": _calling_config(request.tool_choice)}
        body.update(request.extra)
        return body

    def _contents(self, messages: list[Message]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        names: dict[str, str] = {}  # tool-call id -> function name
        for m in messages:
            if m.role == "system":
                continue  # hoisted into systemInstruction
            if m.role == "tool":
                role, parts = "user", [self._function_response(m, names)]
            elif m.role == "assistant":
                role = "model"
                parts = [self._part(p) for p in m.parts if not _empty(p)]
                for call in m.tool_calls:
                    names[call.id] = call.name
                    parts.append(self._function_call(call))
            else:
                role, parts = "user", [self._part(p) for p in m.parts if not _empty(p)]
            if out and out[-1]["role"] == role:
                out[-1]["parts"].extend(parts)
            else:
                out.append({"role": role, "parts": parts})
        return out

    def _function_call(self, call: ToolCall) -> dict[str, Any]:
        function: dict[str, Any] = {"name": call.name, "args": call.arguments}
        if call.id and not call.id.startswith(_CALL_PREFIX):
            function["id"] = call.id
        part: dict[str, Any] = {"functionCall": function}
        signature = self._signatures.get(call.id)
        if signature:
            part["thoughtSignature"] = signature
        return part

    def _function_response(self, m: Message, names: Mapping[str, str]) -> dict[str, Any]:
        name = m.name or names.get(m.tool_call_id or "")
        if not name:
            raise self.unsupported(
                "a tool result without the tool's name",
                "Gemini matches results by function name: give the tool message a name, or "
                "keep the assistant message with the tool call before it in the history.",
            )
        function: dict[str, Any] = {"name": name, "response": _as_object(m.text)}
        if m.tool_call_id and not m.tool_call_id.startswith(_CALL_PREFIX):
            function["id"] = m.tool_call_id
        return {"functionResponse": function}

    def _part(self, p: Part) -> dict[str, Any]:
        if isinstance(p, TextPart):
            return {"text": p.text}
        if p.data is not None:
            return {"inlineData": {"mimeType": p.mime_type, "data": p.b64()}}
        file_data: dict[str, Any] = {"fileUri": p.url}
        mime = p.mime_type
        if mime.endswith("/*"):  # a URL part whose type was never sniffed
            mime = mimetypes.guess_type(urlsplit(str(p.url)).path)[0] or ""
        if mime:
            file_data["mimeType"] = mime
        return {"fileData": file_data}

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
            self._check_blocked(data, model)
        candidate = candidates[0] if candidates else {}
        parts = (candidate.get("content") or {}).get("parts") or []
        text = "".join(p["text"] for p in parts if "text" in p and not p.get("thought"))
        calls = self._calls(parts, data.get("responseId"))
        return Response(
            text=text,
            model=data.get("modelVersion") or model,
            provider=self.name,
            usage=_usage(data.get("usageMetadata")),
            finish_reason=_finish(candidate.get("finishReason"), calls),
            tool_calls=calls,
            raw=dict(data),
        )

    def _check_blocked(self, data: Mapping[str, Any], model: str) -> None:
        reason = (data.get("promptFeedback") or {}).get("blockReason")
        if reason:
            raise BadRequestError(
                f"{self.name} ({model}) blocked the prompt ({reason}) and gave no answer. "
                "Rephrase the prompt or remove the content its safety filters objected to.",
                provider=self.name,
                model=model,
            )

    def _calls(self, parts: Sequence[Mapping[str, Any]], response_id: Any) -> list[ToolCall]:
        calls = []
        for index, part in enumerate(parts):
            fc = part.get("functionCall")
            if not isinstance(fc, Mapping) or not fc.get("name"):
                continue
            args = fc.get("args") or {}
            call_id = fc.get("id") or _call_id(response_id, index, fc["name"], args)
            if part.get("thoughtSignature"):
                self._remember(call_id, str(part["thoughtSignature"]))
            calls.append(ToolCall.from_raw(call_id, fc["name"], args))
        return calls

    def _remember(self, call_id: str, signature: str) -> None:
        self._signatures[call_id] = signature
        self._signatures.move_to_end(call_id)
        while len(self._signatures) > _MAX_SIGNATURES:
            self._signatures.popitem(last=False)

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
                    raise _stream_error(chunk, response, ctx, "".join(text))
                candidates = chunk.get("candidates") or []
                if not candidates and not text:
                    self._check_blocked(chunk, request.model)
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
        calls = self._calls(parts, response_id)
        yield Response(
            text="".join(text),
            model=model,
            provider=self.name,
            usage=_usage(usage),
            finish_reason=_finish(finish, calls),
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
            return [_values(data.get("embedding"))], Usage()
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
            found = [_values(e) for e in data.get("embeddings") or []]
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


# --- helpers ------------------------------------------------------------------------------


def _empty(p: Part) -> bool:
    return isinstance(p, TextPart) and not p.text


def _as_object(text: str) -> dict[str, Any]:
    # functionResponse.response must be an object: a JSON object result goes as it is,
    # anything else under "result".
    try:
        value = json.loads(text) if text.strip() else ""
    except ValueError:
        value = text
    return value if isinstance(value, dict) else {"result": value}


def _call_id(response_id: Any, index: int, name: str, args: Any) -> str:
    seed = json.dumps([response_id, index, name, args], sort_keys=True, default=str)
    return _CALL_PREFIX + hashlib.sha256(seed.encode()).hexdigest()[:20]


def _calling_config(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, Mapping):
        function = choice.get("function")
        name = choice.get("name") or (
            function.get("name") if isinstance(function, Mapping) else None
        )
        if name:
            return {"mode": "ANY", "allowedFunctionNames": [name]}
        return dict(choice)
    mode = _MODES.get(choice)
    if mode is not None:
        return {"mode": mode}
    return {"mode": "ANY", "allowedFunctionNames": [choice]}


def _finish(reason: Any, calls: list[ToolCall]) -> str | None:
    if calls and reason in (None, "STOP"):
        return "tool_calls"  # Gemini says STOP when it calls a function
    if reason is None:
        return None
    return _FINISH.get(str(reason), str(reason).lower())


def _usage(u: Mapping[str, Any] | None) -> Usage:
    if not u:
        return Usage()
    return Usage(
        input_tokens=int(u.get("promptTokenCount") or 0)
        + int(u.get("toolUsePromptTokenCount") or 0),
        # Thinking is billed as output.
        output_tokens=int(u.get("candidatesTokenCount") or 0)
        + int(u.get("thoughtsTokenCount") or 0),
        cached_input_tokens=int(u.get("cachedContentTokenCount") or 0),
    )


def _values(embedding: Any) -> list[float]:
    values = embedding.get("values") if isinstance(embedding, Mapping) else None
    return [float(x) for x in values or []]


def _stream_error(
    payload: Mapping[str, Any], response: Any, ctx: ErrorContext, arrived: str
) -> LLMError:
    """An error object inside the stream, as the exception its HTTP status would give; after
    text arrived, a StreamInterruptedError keeping that text."""
    error = payload.get("error")
    code = error.get("code") if isinstance(error, Mapping) else None
    status = code if isinstance(code, int) and 400 <= code <= 599 else 500
    return error_from_stream_event(payload, status, response, ctx, arrived)
