"""Gemini function calls: the ids derived for calls Gemini gives none, and the memory of
thought signatures, by call id, that a later request sends back with its call."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from ..._core.types import ToolCall

CALL_PREFIX = "gcall_"  # ids this package made up; never sent back as Gemini ids
_MAX_SIGNATURES = 512


def function_call_part(call: ToolCall, signatures: Mapping[str, str]) -> dict[str, Any]:
    """The ``functionCall`` part of an assistant turn, with its thought signature if known."""
    function: dict[str, Any] = {"name": call.name, "args": call.arguments}
    if call.id and not call.id.startswith(CALL_PREFIX):
        function["id"] = call.id
    part: dict[str, Any] = {"functionCall": function}
    signature = signatures.get(call.id)
    if signature:
        part["thoughtSignature"] = signature
    return part


def parse_calls(
    parts: Sequence[Mapping[str, Any]], response_id: Any, signatures: OrderedDict[str, str]
) -> list[ToolCall]:
    """The tool calls among an answer's parts, remembering their thought signatures."""
    calls = []
    for index, part in enumerate(parts):
        fc = part.get("functionCall")
        if not isinstance(fc, Mapping) or not fc.get("name"):
            continue
        args = fc.get("args") or {}
        call_id = fc.get("id") or _call_id(response_id, index, fc["name"], args)
        if part.get("thoughtSignature"):
            _remember(signatures, call_id, str(part["thoughtSignature"]))
        calls.append(ToolCall.from_raw(call_id, fc["name"], args))
    return calls


def _remember(signatures: OrderedDict[str, str], call_id: str, signature: str) -> None:
    signatures[call_id] = signature
    signatures.move_to_end(call_id)
    while len(signatures) > _MAX_SIGNATURES:
        signatures.popitem(last=False)


def _call_id(response_id: Any, index: int, name: str, args: Any) -> str:
    seed = json.dumps([response_id, index, name, args], sort_keys=True, default=str)
    return CALL_PREFIX + hashlib.sha256(seed.encode()).hexdigest()[:20]
