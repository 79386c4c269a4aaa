"""Chat Completions answers as a :class:`Response`, the error object a stream can carry after
its 200, and the usage and embedding vectors of OpenAI-shaped answers."""

from __future__ import annotations

import array
import base64
import sys
from typing import Any

from ..._core.errors import LLMError
from ..._core.types import Response, ToolCall, Usage
from ..._runtime.http_errors import ErrorContext, error_from_stream_event

#: OpenAI's finish reasons that differ from the neutral ones.
FINISH_REASONS = {"tool_calls": "tool_calls", "function_call": "tool_calls"}


def parse_completion(data: dict[str, Any], model: str, provider: str) -> Response:
    """The Response of a ``/chat/completions`` answer; ValueError when it has no message."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("the answer has no choices")
    choice: dict[str, Any] = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise ValueError("choices[0] has no message")
    calls = [
        ToolCall.from_raw(tc.get("id", ""), tc["function"]["name"], tc["function"].get("arguments"))
        for tc in message.get("tool_calls") or []
    ]
    finish: Any = choice.get("finish_reason")
    return Response(
        text=message.get("content") or "",
        model=data.get("model") or model,
        provider=provider,
        usage=usage_of(data.get("usage")),
        finish_reason=FINISH_REASONS.get(finish, finish),
        tool_calls=calls,
        raw=data,
    )


def usage_of(u: dict[str, Any] | None) -> Usage:
    """The Usage of an OpenAI ``usage`` block."""
    if not u:
        return Usage()
    details = u.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=int(u.get("prompt_tokens") or 0),
        output_tokens=int(u.get("completion_tokens") or 0),
        cached_input_tokens=int(details.get("cached_tokens") or 0),
    )


def vector(embedding: Any) -> list[float]:
    """One embedding, as floats or base64 little-endian float32."""
    if isinstance(embedding, str):
        floats = array.array("f")
        floats.frombytes(base64.b64decode(embedding))
        if sys.byteorder != "little":
            floats.byteswap()
        return floats.tolist()
    if isinstance(embedding, list) and embedding and isinstance(embedding[0], list):
        return embedding  # per-token vectors (llama.cpp without pooling): the client says so
    return [float(x) for x in embedding]


def stream_error(chunk: dict[str, Any], response: Any, ctx: ErrorContext, arrived: str) -> LLMError:
    """An error object inside the stream, as the exception its ``code`` (an HTTP status, else
    500) would give; after text arrived, a StreamInterruptedError keeping that text."""
    error = chunk.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    status = code if isinstance(code, int) and 400 <= code <= 599 else 500
    return error_from_stream_event(chunk, status, response, ctx, arrived)
