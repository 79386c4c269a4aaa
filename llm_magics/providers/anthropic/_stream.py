"""Anthropic's SSE events: one streamed message put together event by event, and the
``error`` event raised as the exception its HTTP status would give."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._core.errors import LLMError
from ..._core.types import ChatRequest
from ..._runtime.http_errors import ErrorContext, error_from_stream_event
from ._tools import is_wrapped, schema_tool_name

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


class StreamedMessage:
    """What the events of one stream said so far: the answer text, the content blocks by
    index, usage, stop reason, model and message id."""

    def __init__(self, request: ChatRequest) -> None:
        self.schema_name = schema_tool_name(request.schema) if request.schema is not None else None
        # A non-object schema travels wrapped in {"value": ...}: its JSON is yielded unwrapped,
        # once, at the end instead of as deltas.
        self.live_json = request.schema is not None and not is_wrapped(request.schema)
        self.text: list[str] = []
        self.blocks: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] = {}
        self.stop: str | None = None
        self.model = request.model
        self.message_id: Any = None

    def arrived(self) -> str:
        """The answer text streamed so far."""
        return "".join(self.text)

    def take(self, kind: str, payload: Mapping[str, Any]) -> str | None:
        """Apply one event (not ``error`` or ``message_stop``); the answer text it adds."""
        if kind == "message_start":
            message = payload.get("message") or {}
            self.model = message.get("model") or self.model
            self.message_id = message.get("id")
            self.usage.update(message.get("usage") or {})
        elif kind == "content_block_start":
            return self._block_start(payload)
        elif kind == "content_block_delta":
            return self._block_delta(payload)
        elif kind == "message_delta":
            self.stop = (payload.get("delta") or {}).get("stop_reason") or self.stop
            for field, value in (payload.get("usage") or {}).items():
                if value is not None:
                    self.usage[field] = value
        return None

    def _block_start(self, payload: Mapping[str, Any]) -> str | None:
        block = dict(payload.get("content_block") or {})
        block["json"] = ""
        self.blocks[payload.get("index", len(self.blocks))] = block
        if block.get("type") == "text" and block.get("text") and not self.schema_name:
            self.text.append(block["text"])
            return block["text"]
        return None

    def _block_delta(self, payload: Mapping[str, Any]) -> str | None:
        delta = payload.get("delta") or {}
        slot = self.blocks.setdefault(payload.get("index", 0), {"type": "text", "json": ""})
        if delta.get("type") == "text_delta" and delta.get("text"):
            slot["text"] = slot.get("text", "") + delta["text"]
            if self.schema_name is None:
                self.text.append(delta["text"])
                return delta["text"]
        elif delta.get("type") == "input_json_delta":
            piece = delta.get("partial_json") or ""
            slot["json"] += piece
            if self.live_json and slot.get("name") == self.schema_name and piece:
                self.text.append(piece)
                return piece
        return None

    def as_answer(self) -> dict[str, Any]:
        """The message in the shape of a non-streamed answer, for ``parse_message``."""
        content = []
        for _, block in sorted(self.blocks.items()):
            if block.get("type") == "tool_use":
                # The streamed JSON text, kept as text so ToolCall.raw_arguments keeps it even
                # when it does not parse.
                arguments = block["json"] if block["json"].strip() else block.get("input") or {}
                content.append({**block, "input": arguments})
            elif block.get("type") == "text":
                content.append({"type": "text", "text": block.get("text", "")})
        return {
            "content": content,
            "stop_reason": self.stop,
            "model": self.model,
            "usage": self.usage,
        }

    def raw(self) -> dict[str, Any]:
        """``Response.raw`` of the streamed answer."""
        return {"id": self.message_id, "model": self.model, "streamed": True, "usage": self.usage}


def stream_error(
    payload: Mapping[str, Any], response: Any, ctx: ErrorContext, arrived: str
) -> LLMError:
    """An ``error`` event (e.g. overloaded_error after the 200) as the exception the same error
    would have been as an HTTP status; after text arrived, a StreamInterruptedError keeping it."""
    error = payload.get("error") or {}
    status = _STREAM_ERROR_STATUS.get(str(error.get("type")), 500)
    return error_from_stream_event(payload, status, response, ctx, arrived)
