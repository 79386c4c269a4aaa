"""OpenAI's Batch API (also Groq's, which copies it): the requests as a JSONL file uploaded to
``POST /files`` (``purpose=batch``), one job from ``POST /batches``, polled at
``GET /batches/{id}``, cancelled with ``POST /batches/{id}/cancel``; the answers in the job's
output file and the failures (errors, expired and cancelled requests) in its error file, both
read from ``GET /files/{id}/content``.

A line of the input file: ``{"custom_id", "method": "POST", "url": "/v1/chat/completions",
"body": <the chat body>}``; of the output and error files: ``{"id", "custom_id", "response":
{"status_code", "request_id", "body"}, "error": {"code", "message"} | null}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..._core.batch import BatchItem, BatchJob
from ..._core.types import ChatRequest, Response
from ..._runtime.http import Timeouts, request_json
from ..._runtime.http_errors import ErrorContext

__all__ = ["ENDPOINT", "input_file", "job_of", "read_results", "retrieve", "submit"]

ENDPOINT = "/v1/chat/completions"
_ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
_UNANSWERED = {"batch_expired": "expired", "batch_cancelled": "canceled"}


def input_file(items: Sequence[tuple[str, ChatRequest]], body: Callable[..., Any]) -> bytes:
    """The JSONL input file of ``items``; ``body(request)`` is the provider's chat body."""
    lines = [
        json.dumps(
            {"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": body(request)},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        for cid, request in items
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


async def submit(
    base_url: str,
    content: bytes,
    window: str,
    *,
    ctx: ErrorContext,
    headers: Mapping[str, str],
    timeout: Timeouts,
    transport: Any,
) -> BatchJob:
    """Upload the input file, then start its job."""
    uploaded, _ = await request_json(
        "POST",
        f"{base_url}/files",
        ctx=ctx,
        headers=headers,
        data={"purpose": "batch"},
        files={"file": ("llm-magics-batch.jsonl", content, "application/jsonl")},
        timeout=timeout,
        transport=transport,
    )
    body = {"input_file_id": uploaded["id"], "endpoint": ENDPOINT, "completion_window": window}
    data, _ = await request_json(
        "POST",
        f"{base_url}/batches",
        ctx=ctx,
        headers=headers,
        json_body=body,
        timeout=timeout,
        transport=transport,
    )
    return job_of(data)


async def retrieve(base_url: str, job_id: str, *, cancel: bool = False, **http: Any) -> BatchJob:
    """The job as it is now (``cancel``: after asking to cancel it)."""
    method, path = (
        ("POST", f"/batches/{job_id}/cancel") if cancel else ("GET", f"/batches/{job_id}")
    )
    data, _ = await request_json(method, f"{base_url}{path}", **http)
    return job_of(data)


def job_of(data: Mapping[str, Any]) -> BatchJob:
    counts = data.get("request_counts") or {}
    status = str(data.get("status") or "")
    errors = ((data.get("errors") or {}).get("data")) or []
    message = "; ".join(str(e.get("message") or e.get("code")) for e in errors) or None
    files = tuple(str(data[k]) for k in ("output_file_id", "error_file_id") if data.get(k))
    return BatchJob(
        id=str(data["id"]),
        status=status,
        ended=status in _ENDED,
        requests=int(counts.get("total") or 0),
        succeeded=int(counts.get("completed") or 0),
        failed=int(counts.get("failed") or 0),
        error=message if status == "failed" else None,
        results=files,
        raw=dict(data),
    )


async def read_results(
    base_url: str,
    job: BatchJob,
    parse: Callable[[dict[str, Any], ChatRequest], Response],
    requests: Mapping[str, ChatRequest],
    **http: Any,
) -> list[BatchItem]:
    """Every line of the job's output and error files, as items."""
    items: list[BatchItem] = []
    for file_id in job.results:
        text, _ = await request_json(
            "GET", f"{base_url}/files/{file_id}/content", expect_json=False, **http
        )
        for raw in text.splitlines():
            if raw.strip():
                items.append(_item(json.loads(raw), parse, requests))
    return items


def _item(
    line: Mapping[str, Any],
    parse: Callable[[dict[str, Any], ChatRequest], Response],
    requests: Mapping[str, ChatRequest],
) -> BatchItem:
    custom_id = str(line.get("custom_id"))
    response = line.get("response") or {}
    body = response.get("body")
    request = requests.get(custom_id)
    if response.get("status_code") == 200 and isinstance(body, dict) and request is not None:
        try:
            return BatchItem(custom_id, "succeeded", response=parse(body, request))
        except ValueError as exc:
            return BatchItem(custom_id, "errored", error=f"the answer did not parse: {exc}")
    error = line.get("error") or (body.get("error") if isinstance(body, dict) else None) or {}
    code = str(error.get("code") or "")
    message = str(error.get("message") or code or "no answer")
    status = response.get("status_code")
    if status and status != 200:
        message = f"HTTP {status}: {message}"
    return BatchItem(custom_id, _UNANSWERED.get(code, "errored"), error=message)  # type: ignore[arg-type]
