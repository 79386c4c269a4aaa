"""Gemini request bodies: ``contents`` (turns of parts), ``systemInstruction``,
``generationConfig`` and the function declarations with their calling config."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..._core.types import ChatRequest, Message, Part, TextPart
from ..base import Provider
from ._calls import CALL_PREFIX, function_call_part

_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY", "any": "ANY"}


def build_body(
    provider: Provider, request: ChatRequest, signatures: Mapping[str, str]
) -> dict[str, Any]:
    """The JSON body of ``generateContent`` (and of its streaming twin) for ``request``."""
    body: dict[str, Any] = {"contents": _contents(provider, request.messages, signatures)}
    systems = [request.system] if request.system else []
    systems += [m.text for m in request.messages if m.role == "system" and m.text]
    if systems:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(systems)}]}
    config = _generation_config(request)
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


def _generation_config(request: ChatRequest) -> dict[str, Any]:
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
    return config


def _contents(
    provider: Provider, messages: list[Message], signatures: Mapping[str, str]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool-call id -> function name
    for m in messages:
        if m.role == "system":
            continue  # hoisted into systemInstruction
        if m.role == "tool":
            role, parts = "user", [_function_response(provider, m, names)]
        elif m.role == "assistant":
            role = "model"
            parts = [_part(p) for p in m.parts if not _empty(p)]
            for call in m.tool_calls:
                names[call.id] = call.name
                parts.append(function_call_part(call, signatures))
        else:
            role, parts = "user", [_part(p) for p in m.parts if not _empty(p)]
        if out and out[-1]["role"] == role:
            out[-1]["parts"].extend(parts)
        else:
            out.append({"role": role, "parts": parts})
    return out


def _function_response(provider: Provider, m: Message, names: Mapping[str, str]) -> dict[str, Any]:
    name = m.name or names.get(m.tool_call_id or "")
    if not name:
        raise provider.unsupported(
            "a tool result without the tool's name",
            "Gemini matches results by function name: give the tool message a name, or "
            "keep the assistant message with the tool call before it in the history.",
        )
    function: dict[str, Any] = {"name": name, "response": _as_object(m.text)}
    if m.tool_call_id and not m.tool_call_id.startswith(CALL_PREFIX):
        function["id"] = m.tool_call_id
    return {"functionResponse": function}


def _part(p: Part) -> dict[str, Any]:
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
