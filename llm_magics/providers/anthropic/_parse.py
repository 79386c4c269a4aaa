"""Anthropic answers as a :class:`Response`: text and tool-use blocks, the structured answer of
the schema tool, the stop reason and usage."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from ..._core.types import ChatRequest, Response, ToolCall, Usage
from ._tools import schema_tool_name, unwrap

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "pause",
}


def parse_message(data: Mapping[str, Any], request: ChatRequest, provider: str) -> Response:
    """The Response of a Messages API answer (or of a stream put back into that shape)."""
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
            else json.dumps(unwrap(request.schema, structured))
        )
        if not calls and finish == "tool_calls":
            finish = "stop"
    return Response(
        text=answer,
        model=data.get("model") or request.model,
        provider=provider,
        usage=usage_of(data.get("usage")),
        finish_reason=finish,
        tool_calls=calls,
        raw=dict(data),
    )


def usage_of(u: Mapping[str, Any] | None) -> Usage:
    """Anthropic's usage block, with cache reads and writes counted into ``input_tokens``."""
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
