"""Gemini answers: finish reasons, usage, a blocked prompt, embedding values and the error
object a stream can carry after its 200."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._core.errors import BadRequestError, LLMError
from ..._core.types import ToolCall, Usage
from ..._runtime.http_errors import ErrorContext, error_from_stream_event

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


def check_blocked(data: Mapping[str, Any], provider: str, model: str) -> None:
    """Raise when the answer says the prompt was blocked (and so has no candidates)."""
    reason = (data.get("promptFeedback") or {}).get("blockReason")
    if reason:
        raise BadRequestError(
            f"{provider} ({model}) blocked the prompt ({reason}) and gave no answer. "
            "Rephrase the prompt or remove the content its safety filters objected to.",
            provider=provider,
            model=model,
        )


def finish_reason(reason: Any, calls: list[ToolCall]) -> str | None:
    """The neutral finish reason of a ``finishReason``."""
    if calls and reason in (None, "STOP"):
        return "tool_calls"  # Gemini says STOP when it calls a function
    if reason is None:
        return None
    return _FINISH.get(str(reason), str(reason).lower())


def usage_of(u: Mapping[str, Any] | None) -> Usage:
    """The Usage of a ``usageMetadata`` block."""
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


def embedding_values(embedding: Any) -> list[float]:
    """The vector of one ``embedding`` object."""
    found = embedding.get("values") if isinstance(embedding, Mapping) else None
    return [float(x) for x in found or []]


def stream_error(
    payload: Mapping[str, Any], response: Any, ctx: ErrorContext, arrived: str
) -> LLMError:
    """An error object inside the stream, as the exception its HTTP status would give; after
    text arrived, a StreamInterruptedError keeping that text."""
    error = payload.get("error")
    code = error.get("code") if isinstance(error, Mapping) else None
    status = code if isinstance(code, int) and 400 <= code <= 599 else 500
    return error_from_stream_event(payload, status, response, ctx, arrived)
