"""Gemini's batch mode with inline requests: ``POST /v1beta/models/{model}:batchGenerateContent``
with ``{"batch": {"displayName", "inputConfig": {"requests": {"requests": [{"request":
<a generateContent body>, "metadata": {"key": custom id}}]}}}}`` answers a long-running
operation named ``batches/{id}``; ``GET /v1beta/batches/{id}`` polls it (``metadata.state``,
``metadata.batchStats``, ``done``), ``POST /v1beta/batches/{id}:cancel`` cancels it; once done,
``response.inlinedResponses.inlinedResponses`` holds one ``{"response" | "error", "metadata"}``
per request, in request order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..._core.batch import BatchItem, BatchJob
from ..._core.errors import LLMError
from ..._core.types import ChatRequest, Response

__all__ = ["items_of", "job_of", "submission"]

_ENDED = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED", "PARTIALLY_SUCCEEDED"})


def submission(items: Sequence[tuple[str, ChatRequest]], body: Callable[..., Any]) -> Any:
    """The ``batchGenerateContent`` body of ``items``."""
    requests = [{"request": body(request), "metadata": {"key": cid}} for cid, request in items]
    return {
        "batch": {
            "displayName": "llm-magics",
            "inputConfig": {"requests": {"requests": requests}},
        }
    }


def _state(meta: Mapping[str, Any]) -> str:
    state = str(meta.get("state") or "")
    return state.removeprefix("JOB_STATE_").removeprefix("BATCH_STATE_")


def job_of(data: Mapping[str, Any]) -> BatchJob:
    """The job of a batch operation."""
    meta = data.get("metadata") or {}
    stats = meta.get("batchStats") or {}
    numbers = {k: int(stats.get(k) or 0) for k in stats}
    state = _state(meta)
    error = data.get("error") or {}
    name = str(data.get("name") or meta.get("name") or "")
    ended = bool(data.get("done")) or state in _ENDED
    return BatchJob(
        id=name,
        status=state.lower() or ("done" if data.get("done") else "pending"),
        ended=ended,
        requests=numbers.get("requestCount", 0),
        succeeded=numbers.get("successfulRequestCount", 0),
        failed=numbers.get("failedRequestCount", 0),
        expired=numbers.get("requestCount", 0) if state == "EXPIRED" else 0,
        error=str(error.get("message")) if error.get("message") else None,
        results=(name,) if ended else (),  # the operation itself holds the answers
        raw=dict(data),
    )


def items_of(
    job: BatchJob,
    parse: Callable[[Mapping[str, Any], str], Response],
    requests: Mapping[str, ChatRequest],
) -> list[BatchItem]:
    """What each request of a done job came to (its operation holds the answers inline)."""
    data = job.raw
    output = data.get("response") or (data.get("metadata") or {}).get("output") or {}
    lines = (output.get("inlinedResponses") or {}).get("inlinedResponses") or []
    ids = [str(cid) for cid in requests]
    unanswered = {"EXPIRED": "expired", "CANCELLED": "canceled"}.get(
        _state(data.get("metadata") or {})
    )
    items: list[BatchItem] = []
    for n, line in enumerate(lines):
        custom_id = str((line.get("metadata") or {}).get("key") or (ids[n] if n < len(ids) else ""))
        request = requests.get(custom_id)
        answer = line.get("response")
        if isinstance(answer, Mapping) and request is not None:
            try:
                items.append(BatchItem(custom_id, "succeeded", parse(answer, request.model)))
            except (ValueError, LLMError) as exc:  # a blocked prompt, an unreadable answer
                items.append(BatchItem(custom_id, "errored", error=str(exc)))
            continue
        error = line.get("error") or {}
        kind = unanswered if unanswered and not error else "errored"
        message = str(error.get("message") or "no answer")
        items.append(BatchItem(custom_id, kind, error=message))  # type: ignore[arg-type]
    return items
