"""The Anthropic Messages API: ``POST {base_url}/v1/messages`` (JSON and SSE streaming) and
``GET {base_url}/v1/models``.

Differences from the OpenAI shape that this module absorbs:

* ``system`` is a top-level field (system messages in the history are hoisted there) and
  ``max_tokens`` is required: when the request has none, a value every model of the family
  accepts is sent (:func:`default_max_tokens`).
* Turns alternate: consecutive messages of one role are merged into one message; tool results
  travel as ``tool_result`` blocks inside a user message, tool calls as ``tool_use`` blocks.
* Structured output (``schema=``) forces a tool named after the schema; the tool's input is the
  answer and becomes ``Response.text`` as JSON, which the client parses into ``parsed``.
* JSON mode (``json_mode=True``) is an instruction appended to the system prompt, not an
  assistant prefill: prefilling is refused by the newest Claude models and by extended
  thinking, while the client's JSON parser already tolerates a stray Markdown fence.
* Usage: ``input_tokens`` here is the whole prompt (Anthropic's ``input_tokens`` plus its cache
  reads and writes), so that, as with every provider, ``cached_input_tokens`` and
  ``cache_write_tokens`` are parts of ``input_tokens``.

No embeddings: Anthropic has no embedding endpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from .._core.errors import LLMError
from .._core.secrets import APIKey, SecretHeaders
from .._core.types import (
    ChatRequest,
    Message,
    OutputSchema,
    Part,
    Response,
    TextPart,
    ToolCall,
    Usage,
)
from .._runtime.http import Timeouts, iter_sse, request_json, stream_request
from .._runtime.http import decode_event as _decode
from .._runtime.http_errors import ErrorContext, error_from_stream_event, truncated_stream_error
from .base import Provider

__all__ = ["API_VERSION", "AnthropicProvider", "default_max_tokens"]

API_VERSION = "2023-06-01"

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "pause",
}
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# The error `type` of an SSE `error` event, as the HTTP status the same error has outside a
# stream, so it maps (and retries) exactly like one.
_STREAM_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_JSON_INSTRUCTION = (
    "Answer with one valid JSON value only: no prose before or after it, no Markdown code fence."
)
_TOOL_ID = re.compile(r"[^a-zA-Z0-9_-]")


def default_max_tokens(model: str) -> int:
    """A ``max_tokens`` the model accepts when the caller gave none: the Claude 3 models
    (Haiku, Sonnet, Opus) stop at 4096 output tokens; Claude 3.5 and later take at least 8192."""
    legacy = ("claude-3-haiku", "claude-3-sonnet", "claude-3-opus")
    return 4096 if model.startswith(legacy) else 8192


class AnthropicProvider(Provider):
    protocol: ClassVar[str] = "anthropic"
    supports_stream = True
    supports_tools = True
    supports_schema = True
    media_kinds = frozenset({"image", "document"})
    context_markers = ("prompt is too long", "exceed context limit")

    # --- request building ----------------------------------------------------------------

    def headers(self, key: APIKey | None) -> dict[str, str]:
        out = SecretHeaders(
            {
                "accept": "application/json",
                "content-type": "application/json",
                "anthropic-version": API_VERSION,
                **self.extra_headers,
            }
        )
        if key is not None:
            out["x-api-key"] = key.reveal()
        return out

    def body(self, request: ChatRequest, *, stream: bool = False) -> dict[str, Any]:
        self.check_media(request)
        systems = [request.system] if request.system else []
        systems += [m.text for m in request.messages if m.role == "system" and m.text]
        if request.json_mode and request.schema is None:
            systems.append(_JSON_INSTRUCTION)
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": (
                request.max_tokens
                if request.max_tokens is not None
                else default_max_tokens(request.model)
            ),
            "messages": self._messages(request.messages),
        }
        if systems:
            body["system"] = "\n\n".join(systems)
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        # Anthropic has no seed: request.seed is left out (sampling is not reproducible there).
        tools: list[dict[str, Any]] = []
        for t in request.tools or []:
            tool: dict[str, Any] = {"name": t.name, "input_schema": _input_schema(t.parameters)}
            if t.description:
                tool["description"] = t.description
            tools.append(tool)
        choice = _tool_choice(request.tool_choice) if request.tool_choice is not None else None
        if request.schema is not None:
            tools.append(_schema_tool(request.schema))
            if choice is None:
                # Alone, the schema tool is forced; next to the caller's tools the model must
                # call one of them, and an answer comes through the schema tool.
                name = schema_tool_name(request.schema)
                choice = {"type": "any"} if request.tools else {"type": "tool", "name": name}
        if tools:
            body["tools"] = tools
            if choice is not None:
                body["tool_choice"] = choice
        if stream:
            body["stream"] = True
        body.update(request.extra)
        return body

    def _messages(self, messages: list[Message]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "system":
                continue  # hoisted into the top-level system field
            role = "assistant" if m.role == "assistant" else "user"
            blocks = self._blocks(m)
            if out and out[-1]["role"] == role:
                out[-1]["content"].extend(blocks)
            else:
                out.append({"role": role, "content": blocks})
        for message in out:
            # Text alone goes as a plain string: the simplest form, and the one servers that
            # only understand strings (some proxies, local servers) do not drop.
            blocks = message["content"]
            if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
                message["content"] = blocks[0]["text"]
        return out

    def _blocks(self, m: Message) -> list[dict[str, Any]]:
        if m.role == "tool":
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": tool_use_id(m.tool_call_id or m.name or ""),
            }
            content = [self._part(p) for p in m.parts if not _empty(p)]
            if content:
                only_text = all(isinstance(p, TextPart) for p in m.parts)
                result["content"] = m.text if only_text else content
            return [result]
        blocks = [self._part(p) for p in m.parts if not _empty(p)]
        if m.role == "assistant":
            blocks += [
                {
                    "type": "tool_use",
                    "id": tool_use_id(t.id or t.name),
                    "name": t.name,
                    "input": t.arguments,
                }
                for t in m.tool_calls
            ]
        return blocks

    def _part(self, p: Part) -> dict[str, Any]:
        if isinstance(p, TextPart):
            return {"type": "text", "text": p.text}
        if p.kind == "image":
            if p.data is None:
                return {"type": "image", "source": {"type": "url", "url": p.url}}
            if p.mime_type not in _IMAGE_TYPES:
                raise self.unsupported(
                    f"images of type {p.mime_type}", "Convert it to PNG, JPEG, GIF or WebP."
                )
            return {
                "type": "image",
                "source": {"type": "base64", "media_type": p.mime_type, "data": p.b64()},
            }
        if p.data is None:
            return {"type": "document", "source": {"type": "url", "url": p.url}}
        if p.mime_type == "application/pdf":
            source = {"type": "base64", "media_type": "application/pdf", "data": p.b64()}
        elif p.mime_type == "text/plain":
            text = p.data.decode("utf-8", "replace")
            source = {"type": "text", "media_type": "text/plain", "data": text}
        else:
            raise self.unsupported(f"documents of type {p.mime_type}", "It takes PDF and text.")
        return {"type": "document", "source": source}

    # --- chat ----------------------------------------------------------------------------

    async def chat(self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts) -> Response:
        data, _ = await request_json(
            "POST",
            f"{self.base_url}/v1/messages",
            ctx=self.error_context(request.model, key),
            headers=self.headers(key),
            json_body=self.body(request),
            timeout=timeouts,
            transport=self.transport,
        )
        return self.parse_response(data, request)

    def parse_response(self, data: Mapping[str, Any], request: ChatRequest) -> Response:
        text: list[str] = []
        calls: list[ToolCall] = []
        structured: Any = None
        schema_name = schema_tool_name(request.schema) if request.schema is not None else None
        for block in data.get("content") or []:
            kind = block.get("type")
            if kind == "text":
                text.append(block.get("text") or "")
            elif kind == "tool_use":
                if block.get("name") == schema_name and structured is None:
                    structured = block.get("input") or {}
                else:
                    calls.append(
                        ToolCall.from_raw(block.get("id", ""), block["name"], block.get("input"))
                    )
        stop = data.get("stop_reason")
        finish = _FINISH.get(stop or "", stop)
        answer = "".join(text)
        if structured is not None and request.schema is not None:
            if isinstance(structured, str):  # streamed JSON text
                # When it does not parse, the client's schema parse reports it, with the text.
                with contextlib.suppress(ValueError):
                    structured = json.loads(structured)
            answer = (
                structured
                if isinstance(structured, str)
                else json.dumps(_unwrap(request.schema, structured))
            )
            if not calls and finish == "tool_calls":
                finish = "stop"
        return Response(
            text=answer,
            model=data.get("model") or request.model,
            provider=self.name,
            usage=_usage(data.get("usage")),
            finish_reason=finish,
            tool_calls=calls,
            raw=dict(data),
        )

    async def stream(
        self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts
    ) -> AsyncIterator[str | Response]:
        ctx = self.error_context(request.model, key)
        schema_name = schema_tool_name(request.schema) if request.schema is not None else None
        # A non-object schema travels wrapped in {"value": ...}: its JSON is yielded unwrapped,
        # once, at the end instead of as deltas.
        live_json = request.schema is not None and not _wrapped(request.schema)
        text: list[str] = []
        blocks: dict[int, dict[str, Any]] = {}
        usage: dict[str, Any] = {}
        stop: str | None = None
        model = request.model
        message_id = None
        finished = False
        async with stream_request(
            "POST",
            f"{self.base_url}/v1/messages",
            ctx=ctx,
            headers=SecretHeaders(self.headers(key), accept="text/event-stream"),
            json_body=self.body(request, stream=True),
            timeout=timeouts,
            transport=self.transport,
        ) as response:
            async for event, data in iter_sse(response, ctx, lambda: "".join(text)):
                payload = _decode(data, ctx)
                kind = payload.get("type") or event
                if kind == "error":
                    raise _stream_error(payload, response, ctx, "".join(text))
                if kind == "message_start":
                    message = payload.get("message") or {}
                    model = message.get("model") or model
                    message_id = message.get("id")
                    usage.update(message.get("usage") or {})
                elif kind == "content_block_start":
                    block = dict(payload.get("content_block") or {})
                    block["json"] = ""
                    blocks[payload.get("index", len(blocks))] = block
                    if block.get("type") == "text" and block.get("text") and not schema_name:
                        text.append(block["text"])
                        yield block["text"]
                elif kind == "content_block_delta":
                    delta = payload.get("delta") or {}
                    slot = blocks.setdefault(payload.get("index", 0), {"type": "text", "json": ""})
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        slot["text"] = slot.get("text", "") + delta["text"]
                        if schema_name is None:
                            text.append(delta["text"])
                            yield delta["text"]
                    elif delta.get("type") == "input_json_delta":
                        piece = delta.get("partial_json") or ""
                        slot["json"] += piece
                        if live_json and slot.get("name") == schema_name and piece:
                            text.append(piece)
                            yield piece
                elif kind == "message_delta":
                    stop = (payload.get("delta") or {}).get("stop_reason") or stop
                    for field, value in (payload.get("usage") or {}).items():
                        if value is not None:
                            usage[field] = value
                elif kind == "message_stop":
                    finished = True
                    break
        if not finished:
            raise truncated_stream_error(ctx, "".join(text), "message_stop")
        content = []
        for _, block in sorted(blocks.items()):
            if block.get("type") == "tool_use":
                # The streamed JSON text, kept as text so ToolCall.raw_arguments keeps it even
                # when it does not parse.
                arguments = block["json"] if block["json"].strip() else block.get("input") or {}
                content.append({**block, "input": arguments})
            elif block.get("type") == "text":
                content.append({"type": "text", "text": block.get("text", "")})
        final = self.parse_response(
            {"content": content, "stop_reason": stop, "model": model, "usage": usage}, request
        )
        if request.schema is not None and not live_json and final.text:
            yield final.text
        final.raw = {"id": message_id, "model": model, "streamed": True, "usage": usage}
        yield final

    # --- models --------------------------------------------------------------------------

    async def list_models(self, key: APIKey | None, timeouts: Timeouts) -> list[str]:
        ids: list[str] = []
        params = {"limit": "1000"}
        while True:
            data, _ = await request_json(
                "GET",
                f"{self.base_url}/v1/models",
                ctx=self.error_context(None, key),
                headers=self.headers(key),
                params=params,
                timeout=timeouts,
                transport=self.transport,
            )
            ids += [str(m["id"]) for m in data.get("data") or [] if m.get("id")]
            if not data.get("has_more") or not data.get("last_id"):
                return sorted(ids)
            params = {"limit": "1000", "after_id": str(data["last_id"])}


# --- helpers ------------------------------------------------------------------------------


def schema_tool_name(schema: OutputSchema) -> str:
    """The name of the tool that carries a structured answer (Anthropic's name pattern)."""
    cleaned = _TOOL_ID.sub("_", schema.name)[:64]
    return cleaned or "output"


def tool_use_id(raw: str) -> str:
    """A tool-call id Anthropic accepts (``^[a-zA-Z0-9_-]+$``); ids from other providers are
    rewritten the same way for the call and its result, so they still pair up."""
    cleaned = _TOOL_ID.sub("_", raw)
    if cleaned:
        return cleaned
    return "toolu_" + hashlib.sha256(raw.encode()).hexdigest()[:24]


def _empty(p: Part) -> bool:
    # Anthropic refuses empty text blocks.
    return isinstance(p, TextPart) and not p.text


def _wrapped(schema: OutputSchema) -> bool:
    return schema.json_schema.get("type") != "object"


def _schema_tool(schema: OutputSchema) -> dict[str, Any]:
    js = schema.json_schema
    # A tool's input is always an object: any other schema (a list, a string) is wrapped.
    input_schema = js if not _wrapped(schema) else _object_wrapper(js)
    description = js.get("description") or f"Give the answer as {schema.name}."
    return {
        "name": schema_tool_name(schema),
        "description": f"Return the final answer. {description}",
        "input_schema": input_schema,
    }


def _object_wrapper(js: dict[str, Any]) -> dict[str, Any]:
    inner = {k: v for k, v in js.items() if k != "$defs"}
    wrapper: dict[str, Any] = {
        "type": "object",
        "properties": {"value": inner},
        "required": ["value"],
    }
    if "$defs" in js:
        wrapper["$defs"] = js["$defs"]
    return wrapper


def _unwrap(schema: OutputSchema, structured: Any) -> Any:
    if _wrapped(schema) and isinstance(structured, Mapping) and "value" in structured:
        return structured["value"]
    return structured


def _input_schema(parameters: Mapping[str, Any]) -> dict[str, Any]:
    schema = dict(parameters) if parameters else {}
    schema.setdefault("type", "object")
    return schema


def _tool_choice(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, Mapping):
        if choice.get("type") in ("auto", "any", "none", "tool"):
            return dict(choice)
        function = choice.get("function")
        if isinstance(function, Mapping) and function.get("name"):
            return {"type": "tool", "name": function["name"]}
        return dict(choice)
    if choice in ("auto", "none", "any"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    return {"type": "tool", "name": choice}


def _usage(u: Mapping[str, Any] | None) -> Usage:
    if not u:
        return Usage()
    read = int(u.get("cache_read_input_tokens") or 0)
    write = int(u.get("cache_creation_input_tokens") or 0)
    return Usage(
        input_tokens=int(u.get("input_tokens") or 0) + read + write,
        output_tokens=int(u.get("output_tokens") or 0),
        cached_input_tokens=read,
        cache_write_tokens=write,
    )


def _stream_error(
    payload: Mapping[str, Any], response: Any, ctx: ErrorContext, arrived: str
) -> LLMError:
    """An ``error`` event (e.g. overloaded_error after the 200) as the exception the same error
    would have been as an HTTP status; after text arrived, a StreamInterruptedError keeping it."""
    error = payload.get("error") or {}
    status = _STREAM_ERROR_STATUS.get(str(error.get("type")), 500)
    return error_from_stream_event(payload, status, response, ctx, arrived)
