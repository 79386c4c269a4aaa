"""Ollama answers: tool calls (with ids derived for Ollama's id-less calls), finish reason,
usage, and the error for a stream that broke off."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..._core.errors import StreamInterruptedError
from ..._core.types import Response, ToolCall, Usage

_FINISH = {"stop": "stop", "length": "length"}
_CALL_PREFIX = "ocall_"


def parse_chat(data: Mapping[str, Any], model: str, provider: str) -> Response:
    """The Response of an ``/api/chat`` answer."""
    message = data.get("message") or {}
    calls = tool_calls(message.get("tool_calls") or [], data.get("created_at"))
    return Response(
        text=message.get("content") or "",
        model=data.get("model") or model,
        provider=provider,
        usage=usage_of(data),
        finish_reason=finish_reason(data.get("done_reason"), calls),
        tool_calls=calls,
        raw=dict(data),
    )


def tool_calls(raw: Sequence[Mapping[str, Any]], stamp: Any) -> list[ToolCall]:
    """The named tool calls of an answer; ``stamp`` (its ``created_at``) seeds derived ids."""
    calls = []
    for index, tc in enumerate(raw):
        fn = tc.get("function") or {}
        if not fn.get("name"):
            continue
        args = fn.get("arguments") or {}
        call_id = tc.get("id") or _call_id(stamp, index, fn["name"], args)
        calls.append(ToolCall.from_raw(str(call_id), fn["name"], args))
    return calls


def _call_id(stamp: Any, index: int, name: str, args: Any) -> str:
    seed = json.dumps([stamp, index, name, args], sort_keys=True, default=str)
    return _CALL_PREFIX + hashlib.sha256(seed.encode()).hexdigest()[:20]


def finish_reason(reason: Any, calls: list[ToolCall]) -> str | None:
    """The neutral finish reason of a ``done_reason``."""
    if calls:
        return "tool_calls"
    if reason is None:
        return None
    return _FINISH.get(str(reason), str(reason))


def usage_of(data: Mapping[str, Any]) -> Usage:
    """The Usage of a final answer chunk (its eval counts)."""
    return Usage(
        input_tokens=int(data.get("prompt_eval_count") or 0),
        output_tokens=int(data.get("eval_count") or 0),
    )


def interrupted(
    provider: str, model: str, text: list[str], cause: Exception | None
) -> StreamInterruptedError:
    """The error for a stream that broke after ``text`` arrived, keeping that text."""
    arrived = "".join(text)
    why = f": {cause}" if cause is not None else " without done: true"
    return StreamInterruptedError(
        f"the {provider} stream broke after {len(arrived)} characters{why}. The partial "
        "answer is on .partial_text.",
        partial_text=arrived,
        provider=provider,
        model=model,
    )
