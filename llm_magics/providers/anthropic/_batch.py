"""Anthropic's Message Batches: ``POST /v1/messages/batches`` with ``{"requests": [{"custom_id",
"params": <a Messages body>}]}``, polled at ``GET /v1/messages/batches/{id}``, cancelled with
``POST .../cancel``; once ``processing_status`` is ``ended``, the results are JSONL at the
batch's ``results_url``, one ``{"custom_id", "result": {"type": "succeeded", "message"} |
{"type": "errored", "error"} | {"type": "canceled"} | {"type": "expired"}}`` per request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ..._core.batch import BatchItem, BatchJob
from ..._core.types import ChatRequest, Response
from ..._runtime.http import request_json

__all__ = ["job_of", "read_results"]

_KINDS = {"succeeded", "errored", "canceled", "expired"}


def job_of(data: Mapping[str, Any], base_url: str) -> BatchJob:
    """The job of a MessageBatch object. Its results are read from ``base_url`` (where the
    key is sent anyway), whatever host ``results_url`` names."""
    counts = data.get("request_counts") or {}
    numbers = {k: int(counts.get(k) or 0) for k in ("processing", *_KINDS)}
    status = str(data.get("processing_status") or "")
    return BatchJob(
        id=str(data["id"]),
        status=status,
        ended=status == "ended",
        requests=sum(numbers.values()),
        succeeded=numbers["succeeded"],
        failed=numbers["errored"],
        expired=numbers["expired"],
        canceled=numbers["canceled"],
        results=(f"{base_url}/v1/messages/batches/{data['id']}/results",)
        if data.get("results_url")
        else (),
        raw=dict(data),
    )


async def read_results(
    job: BatchJob,
    parse: Callable[[Mapping[str, Any], ChatRequest], Response],
    requests: Mapping[str, ChatRequest],
    **http: Any,
) -> list[BatchItem]:
    """Every line at the job's ``results_url``, as items."""
    items: list[BatchItem] = []
    for url in job.results:
        text, _ = await request_json("GET", url, expect_json=False, **http)
        for raw in text.splitlines():
            if raw.strip():
                items.append(_item(json.loads(raw), parse, requests))
    return items


def _item(
    line: Mapping[str, Any],
    parse: Callable[[Mapping[str, Any], ChatRequest], Response],
    requests: Mapping[str, ChatRequest],
) -> BatchItem:
    custom_id = str(line.get("custom_id"))
    result = line.get("result") or {}
    kind = str(result.get("type") or "errored")
    request = requests.get(custom_id)
    if kind == "succeeded" and isinstance(result.get("message"), dict) and request is not None:
        return BatchItem(custom_id, "succeeded", response=parse(result["message"], request))
    if kind in ("expired", "canceled"):
        return BatchItem(custom_id, kind)  # type: ignore[arg-type]
    error = ((result.get("error") or {}).get("error")) or {}
    message = str(error.get("message") or error.get("type") or "no answer")
    return BatchItem(custom_id, "errored", error=message)
