"""What the response cache stores, and under which key.

The value: a flat JSON array ``[FORMAT_VERSION, stored at, text, model, provider, usage,
finish reason, tool calls, cost, raw]``, UTF-8 bytes, where ``raw`` is the provider's JSON
nested as text (the HTTP body when the provider kept it, see
:func:`~llm_magics._core.types.attach_raw_json`): a cache hit builds few objects and decodes
``raw`` only when someone reads it. A row of an older format version is a quiet miss.

The key: the SHA-256 of the canonical JSON (sorted keys, no whitespace, numbers normalised) of
the request's fingerprint and the provider it goes to; see ``ResponseCache.key_for``.

Everything here is a pure function: safe from any thread.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from typing import Any

from .._core.types import Response, ToolCall, Usage, raw_json_of, response_with_raw_json

__all__ = ["FORMAT_VERSION", "NotAResponse", "decode_response", "encode_response", "request_digest"]

FORMAT_VERSION = 2

_decoder = json.JSONDecoder()
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class NotAResponse(ValueError):
    """Bytes that are JSON of some other shape than a cached response."""


# --- values ------------------------------------------------------------------------------


def encode_response(response: Response) -> bytes:
    """The stored form of ``response``. Raises TypeError/ValueError when it is not JSON-safe."""
    usage = response.usage
    row = [
        FORMAT_VERSION,
        time.time(),
        response.text,
        response.model,
        response.provider,
        [
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_input_tokens,
            usage.cache_write_tokens,
        ],
        response.finish_reason,
        [[t.id, t.name, t.arguments, t.raw_arguments] for t in response.tool_calls],
        response.cost,
        _raw_text(response),
    ]
    return _encoder.encode(row).encode("utf-8", "surrogatepass")


def decode_response(data: bytes) -> Response | None:
    """The Response stored as ``data``; None for an older format version. Raises
    :class:`NotAResponse` for anything else."""
    try:
        row = _decoder.decode(data.decode("utf-8", "surrogatepass"))
        if isinstance(row, dict) and "v" in row:
            return None  # an older format version: a miss, overwritten by the answer
        if not isinstance(row, list) or row[0] != FORMAT_VERSION:
            raise NotAResponse("not a cached response")
        _, _, text, model, provider, usage, finish, calls, cost, raw = row
        if not (isinstance(text, str) and isinstance(raw, str | None)):
            raise NotAResponse("not a cached response")
        response = Response(
            text,
            model,
            provider,
            Usage(*usage),
            finish,
            [ToolCall(*call) for call in calls] if calls else [],
            cost=cost,
        )
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise NotAResponse(str(exc)) from exc
    return response_with_raw_json(response, raw)


def _raw_text(response: Response) -> str | None:
    known = raw_json_of(response)
    if isinstance(known, bytes):
        try:
            return known.decode("utf-8")
        except UnicodeDecodeError:
            pass  # e.g. a UTF-16 body: encode the decoded value below
    elif known is not None:
        return known
    try:
        return None if response.raw is None else _encoder.encode(response.raw)
    except (TypeError, ValueError):
        return None  # ``raw`` holds something that is not JSON (an SDK object)


# --- request digests: the key -----------------------------------------------------------


def _canonical(value: Any) -> Any:
    """JSON-safe, with numbers normalised so equal values give equal keys."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return int(value) if value.is_integer() else value
        return repr(value)
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_canonical(v) for v in value), key=repr)
    if isinstance(value, bytes | bytearray):
        return {"sha256": hashlib.sha256(value).hexdigest()}
    dump = getattr(value, "model_dump", None)  # pydantic objects in ``extra``
    if callable(dump):
        return _canonical(dump(mode="json"))
    return {"type": type(value).__qualname__, "repr": repr(value)}


def request_digest(payload: Any) -> str:
    """SHA-256 of the canonical JSON of ``payload`` (sorted keys, no whitespace)."""
    try:
        # The fast path: a fingerprint is JSON already, apart from the odd value in ``extra``.
        text = _key_encoder.encode(payload)
    except (TypeError, ValueError):  # e.g. dict keys of mixed types
        text = json.dumps(
            _canonical(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _json_default(value: Any) -> Any:
    canonical = _canonical(value)
    if canonical is value:
        raise TypeError(f"cannot canonicalise {type(value).__name__}")
    return canonical


# Built once: json.dumps with options builds a new encoder per call.
_key_encoder = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
)
