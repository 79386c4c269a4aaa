"""The Anthropic side of :class:`~tests.support.batch_server.FakeBatchServer`: the Messages
API and Message Batches (``POST /v1/messages/batches`` with ``{"requests": [{"custom_id",
"params"}]}``, the ``MessageBatch`` object, results as JSONL ``MessageBatchIndividualResponse``
lines at ``results_url``: ``succeeded`` with the message, ``errored``, ``canceled``,
``expired``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx2

from .batch_server import Job, user_text

if TYPE_CHECKING:
    from .batch_server import FakeBatchServer

_AT = "2024-08-20T18:37:24.100435Z"
_ENDED = "2024-08-20T19:37:24.100435Z"


def route(server: FakeBatchServer, request: httpx2.Request, path: str) -> httpx2.Response:
    method = request.method
    if method == "POST" and path == "/messages":
        body = json.loads(request.content)
        answer = server.answer_online(body)
        return server.json(answer, 400 if answer.get("type") == "error" else 200)
    if method == "POST" and path == "/messages/batches":
        return _create(server, json.loads(request.content))
    parts = path.strip("/").split("/")
    if parts[:2] == ["messages", "batches"] and len(parts) >= 3:
        job = server.jobs.get(parts[2])
        if job is None:
            return _missing(server, f"batch {parts[2]} not found")
        if method == "POST" and parts[-1] == "cancel":
            if job.status != "ended":
                job.status = "canceling"
            return server.json(batch_object(server, job, str(request.url)))
        if parts[-1] == "results":
            return _results(server, job)
        job.polls += 1
        if server.per_poll and job.status == "in_progress":
            server.complete(server.per_poll)
        return server.json(batch_object(server, job, str(request.url)))
    return _missing(server, f"no route {method} {path}")


def _missing(server: FakeBatchServer, message: str) -> httpx2.Response:
    return server.json(_error("not_found_error", message), 404)


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}


def _create(server: FakeBatchServer, body: dict[str, Any]) -> httpx2.Response:
    ids = [item["custom_id"] for item in body["requests"]]
    if len(set(ids)) != len(ids):
        return server.json(_error("invalid_request_error", "custom_id must be unique"), 400)
    job = Job(server.new_id("msgbatch_"), [(i["custom_id"], i["params"]) for i in body["requests"]])
    server.jobs[job.id] = job
    return server.json(batch_object(server, job, "https://api.test/v1/messages/batches"))


def batch_object(server: FakeBatchServer, job: Job, url: str) -> dict[str, Any]:
    kinds = [line["result"]["type"] for line in job.results.values()]
    ended = job.status == "ended"
    base = url.split("/v1/messages/batches")[0]
    data = {
        "id": job.id,
        "type": "message_batch",
        "processing_status": job.status,
        "request_counts": {
            # Anthropic counts outcomes only once the whole batch has ended.
            "processing": len(job.pending) if not ended else 0,
            "succeeded": kinds.count("succeeded") if ended else 0,
            "errored": kinds.count("errored") if ended else 0,
            "canceled": kinds.count("canceled") if ended else 0,
            "expired": kinds.count("expired") if ended else 0,
        },
        "created_at": _AT,
        "expires_at": "2024-08-21T18:37:24.100435Z",
        "ended_at": _ENDED if ended else None,
        "archived_at": None,
        "cancel_initiated_at": _AT
        if job.status == "canceling" or job.outcome == "cancelled"
        else None,
        "results_url": f"{base}/v1/messages/batches/{job.id}/results" if ended else None,
    }
    server.check_component("MessageBatch", data)
    return data


def _results(server: FakeBatchServer, job: Job) -> httpx2.Response:
    if job.status != "ended":
        return server.json(_error("invalid_request_error", "the batch is still processing"), 400)
    lines = [job.results[cid] for cid, _ in job.requests]
    for line in lines:
        server.check_component("MessageBatchIndividualResponse", line)
    return server.jsonl(lines, "application/x-jsonl")


def answer(server: FakeBatchServer, body: dict[str, Any], *, batch: bool) -> dict[str, Any]:
    text = user_text(body["messages"])
    if server.fails(text):
        return _error("invalid_request_error", "this prompt fails")
    wire, marks = server.wire_text(body)
    use = server.cache.anthropic(wire, marks)
    reply = server.answer(text)
    model = body["model"]
    output = server.charge(model, use, reply, batch=batch)
    content: dict[str, Any] = {"type": "text", "text": reply, "citations": None}
    tools = body.get("tools") or []
    if tools and (body.get("tool_choice") or {}).get("type") == "tool":
        name = body["tool_choice"]["name"]
        content = {
            "type": "tool_use", "id": "toolu_1", "name": name, "input": json.loads(reply),
            "caller": {"type": "direct"},
        }  # fmt: skip
    return {
        "id": server.new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [content],
        "stop_reason": "tool_use" if content["type"] == "tool_use" else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": use.prompt - use.read - use.written,
            "output_tokens": output,
            "cache_read_input_tokens": use.read,
            "cache_creation_input_tokens": use.written,
        },
    }


def result_line(server: FakeBatchServer, custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = answer(server, body, batch=True)
    if reply.get("type") == "error":
        return {"custom_id": custom_id, "result": {"type": "errored", "error": reply}}
    return {"custom_id": custom_id, "result": {"type": "succeeded", "message": reply}}


def unanswered_line(server: FakeBatchServer, custom_id: str, outcome: str) -> dict[str, Any]:
    kind = {"expired": "expired", "cancelled": "canceled"}.get(outcome, "errored")
    if kind == "errored":
        error = _error("api_error", "the batch failed")
        return {"custom_id": custom_id, "result": {"type": "errored", "error": error}}
    return {"custom_id": custom_id, "result": {"type": kind}}
