"""Ollama ``/api/chat`` request bodies: messages with base64 images and tool calls, sampling
under ``options``, ``format`` for JSON output, and tools."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..._core.errors import ConfigError
from ..._core.types import ChatRequest, Message, Part, TextPart

#: ``Provider.unsupported``: the error for what this provider cannot send.
Unsupported = Callable[[str, str], ConfigError]


def build_body(request: ChatRequest, *, stream: bool, unsupported: Unsupported) -> dict[str, Any]:
    """The JSON body of ``POST /api/chat`` for ``request``."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    names: dict[str, str] = {}  # tool-call id -> function name
    for m in request.messages:
        for call in m.tool_calls:
            names[call.id] = call.name
        messages.append(_message(m, names, unsupported))
    body: dict[str, Any] = {"model": request.model, "messages": messages, "stream": stream}
    options = _options(request)
    if options:
        body["options"] = options
    if request.schema is not None:
        body["format"] = request.schema.json_schema
    elif request.json_mode:
        body["format"] = "json"
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters or {"type": "object", "properties": {}},
                },
            }
            for t in request.tools
        ]
    body.update(request.extra)
    return body


def _options(request: ChatRequest) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.max_tokens is not None:
        options["num_predict"] = request.max_tokens
    if request.top_p is not None:
        options["top_p"] = request.top_p
    if request.stop:
        options["stop"] = list(request.stop)
    if request.seed is not None:
        options["seed"] = request.seed
    return options


def _message(m: Message, names: Mapping[str, str], unsupported: Unsupported) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.text}
    images = [_image(p, unsupported) for p in m.parts if not isinstance(p, TextPart)]
    if images:
        out["images"] = images
    if m.role == "assistant" and m.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": t.name, "arguments": t.arguments}} for t in m.tool_calls
        ]
    if m.role == "tool":
        name = m.name or names.get(m.tool_call_id or "")
        if name:
            out["tool_name"] = name
    return out


def _image(p: Part, unsupported: Unsupported) -> str:
    assert not isinstance(p, TextPart)
    if p.data is None:
        raise unsupported(
            "images by URL", "Ollama takes image bytes: pass a file path, bytes or an image."
        )
    return p.b64()
