"""Chat Completions request bodies: messages and their content parts, sampling fields, tools
and ``response_format``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..._core.errors import ConfigError
from ..._core.types import ChatRequest, MediaPart, Message, TextPart

_AUDIO_FORMATS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
}

#: ``Provider.unsupported``: the error for what this provider cannot send.
Unsupported = Callable[[str, str], ConfigError]


def build_body(
    request: ChatRequest,
    *,
    stream: bool,
    max_tokens_field: str,
    schema_in_json_object: bool,
    stream_usage_option: bool,
    unsupported: Unsupported,
    prompt_cache_key_field: str | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions``, in the given vendor's dialect. The
    system prompt goes first and the messages in order, so what a map's rows share is the
    start of every body (the prefix a prompt cache matches); a vendor with a
    ``prompt_cache_key_field`` gets the request's cache key in it."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages.extend(_message(m, unsupported) for m in request.messages)
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body[max_tokens_field] = request.max_tokens
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
    response_format = _response_format(request, schema_in_json_object)
    if response_format is not None:
        body["response_format"] = response_format
    if stream:
        body["stream"] = True
        if stream_usage_option:
            body["stream_options"] = {"include_usage": True}
    if request.prompt_cache is not None and prompt_cache_key_field:
        body[prompt_cache_key_field] = request.prompt_cache.key
    body.update(request.extra)
    return body


def _response_format(request: ChatRequest, schema_in_json_object: bool) -> dict[str, Any] | None:
    if request.schema is not None and schema_in_json_object:
        return {"type": "json_object", "schema": request.schema.json_schema}
    if request.schema is not None:
        return {
            "type": "json_schema",
            "json_schema": {
                "name": _schema_name(request.schema.name),
                "schema": request.schema.json_schema,
            },
        }
    if request.json_mode:
        return {"type": "json_object"}
    return None


def _message(m: Message, unsupported: Unsupported) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.text}
    out: dict[str, Any] = {"role": m.role}
    if isinstance(m.content, str) or all(isinstance(p, TextPart) for p in m.content):
        out["content"] = m.text if not isinstance(m.content, str) else m.content
    else:
        out["content"] = [_part(p, unsupported) for p in m.content]
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


def _part(p: TextPart | MediaPart, unsupported: Unsupported) -> dict[str, Any]:
    if isinstance(p, TextPart):
        return {"type": "text", "text": p.text}
    if p.kind == "image":
        url = p.url if p.data is None else p.data_url()
        return {"type": "image_url", "image_url": {"url": url}}
    if p.kind == "audio":
        fmt = _AUDIO_FORMATS.get(p.mime_type)
        if fmt is None or p.data is None:
            raise unsupported(f"audio as {p.mime_type}", "Chat audio input takes wav or mp3 bytes.")
        return {"type": "input_audio", "input_audio": {"data": p.b64(), "format": fmt}}
    return {
        "type": "file",
        "file": {"filename": p.filename or "document.pdf", "file_data": p.data_url()},
    }


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str) and choice not in ("auto", "none", "required"):
        return {"type": "function", "function": {"name": choice}}
    return choice


def _schema_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64]
    return cleaned or "output"
