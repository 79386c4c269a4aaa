"""Tools on Anthropic's wire: tool definitions and ``tool_choice``, the names and ids Anthropic
accepts, and the forced tool that carries a structured (``schema=``) answer."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from ..._core.types import ChatRequest, OutputSchema

_TOOL_ID = re.compile(r"[^a-zA-Z0-9_-]")


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


def tools_and_choice(request: ChatRequest) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The ``tools`` of a request body (the caller's, then the schema tool) and its
    ``tool_choice`` (None: leave it out)."""
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
    return tools, choice


def is_wrapped(schema: OutputSchema) -> bool:
    """Whether the schema travels wrapped in ``{"value": ...}`` (a tool input is an object)."""
    return schema.json_schema.get("type") != "object"


def unwrap(schema: OutputSchema, structured: Any) -> Any:
    """The answer inside the schema tool's input, unwrapped when :func:`is_wrapped`."""
    if is_wrapped(schema) and isinstance(structured, Mapping) and "value" in structured:
        return structured["value"]
    return structured


def _schema_tool(schema: OutputSchema) -> dict[str, Any]:
    js = schema.json_schema
    # A tool's input is always an object: any other schema (a list, a string) is wrapped.
    input_schema = js if not is_wrapped(schema) else _object_wrapper(js)
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
