"""The Gemini side of :class:`~tests.support.batch_server.FakeBatchServer`: ``generateContent``
and batch mode with inline requests (``models/{model}:batchGenerateContent`` answering a
``batches/{id}`` operation; ``GET batches/{id}``; ``POST batches/{id}:cancel``; the answers
inline in the done operation's ``response.inlinedResponses.inlinedResponses``, in request
order, each with the request's ``metadata``). Implicit caching bills a repeated prefix of
1,024 tokens or more at the cached price, as OpenAI's automatic cache does."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx2

from .batch_server import Job

if TYPE_CHECKING:
    from .batch_server import FakeBatchServer

_STATE = {"completed": "SUCCEEDED", "expired": "EXPIRED", "cancelled": "CANCELLED"}


def route(server: FakeBatchServer, request: httpx2.Request, path: str) -> httpx2.Response:
    path = request.url.path.removeprefix("/v1beta")
    method = request.method
    if method == "POST" and path.endswith(":generateContent"):
        answer = server.answer_online(json.loads(request.content))
        if "error" in answer:
            return server.json(answer, 400)
        answer["modelVersion"] = path.removeprefix("/models/").partition(":")[0]
        return server.json(answer)
    if method == "POST" and path.endswith(":batchGenerateContent"):
        return _create(server, json.loads(request.content))
    if path.startswith("/batches/"):
        name, _, verb = path.removeprefix("/").partition(":")
        job = server.jobs.get(name)
        if job is None:
            error = {"code": 404, "message": f"{name} not found", "status": "NOT_FOUND"}
            return server.json({"error": error}, 404)
        if method == "POST" and verb == "cancel":
            if job.status != "ended":
                job.status = "canceling"
            return server.json({})
        job.polls += 1
        if server.per_poll and job.status == "in_progress":
            server.complete(server.per_poll)
        return server.json(operation(server, job))
    return server.json({"error": {"code": 404, "message": path, "status": "NOT_FOUND"}}, 404)


def _create(server: FakeBatchServer, body: dict[str, Any]) -> httpx2.Response:
    requests = body["batch"]["inputConfig"]["requests"]["requests"]
    job = Job(
        server.new_id("batches/"),
        [(item["metadata"]["key"], item["request"]) for item in requests],
    )
    server.jobs[job.id] = job
    return server.json(operation(server, job))


def operation(server: FakeBatchServer, job: Job) -> dict[str, Any]:
    ended = job.status == "ended"
    state = _STATE.get(job.outcome, "FAILED") if ended else "RUNNING"
    failed = sum(1 for line in job.results.values() if "error" in line)
    data: dict[str, Any] = {
        "name": job.id,
        "done": ended,
        "metadata": {
            "state": f"JOB_STATE_{state}",
            "model": "models/gemini-2.5-flash",
            "batchStats": {
                "requestCount": str(len(job.requests)),
                "successfulRequestCount": str(len(job.results) - failed),
                "failedRequestCount": str(failed),
                "pendingRequestCount": str(len(job.pending)),
            },
        },
    }
    if ended:
        lines = [job.results[cid] for cid, _ in job.requests]
        data["response"] = {"inlinedResponses": {"inlinedResponses": lines}}
    server.check_component("BatchOperation", data)
    return data


def _wire_text(body: dict[str, Any]) -> str:
    system = "".join(
        p.get("text", "") for p in (body.get("systemInstruction") or {}).get("parts", [])
    )
    parts = [json.dumps(body.get("generationConfig"), sort_keys=True), system]
    for content in body.get("contents") or []:
        parts.append(f"<{content.get('role')}>")
        parts += [str(p.get("text", "")) for p in content.get("parts", [])]
    return "".join(parts)


def answer(server: FakeBatchServer, body: dict[str, Any], *, batch: bool) -> dict[str, Any]:
    contents = body.get("contents") or []
    text = "".join(str(p.get("text", "")) for p in (contents[-1].get("parts") if contents else []))
    if server.fails(text):
        return {
            "error": {"code": 400, "message": "this prompt fails", "status": "INVALID_ARGUMENT"}
        }
    use = server.cache.openai(_wire_text(body))
    reply = server.answer(text)
    output = server.charge("gemini-2.5-flash", use, reply, batch=batch)
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": reply}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": use.prompt,
            "candidatesTokenCount": output,
            "cachedContentTokenCount": use.read,
            "totalTokenCount": use.prompt + output,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": server.new_id("resp-"),
    }


def result_line(server: FakeBatchServer, custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = answer(server, body, batch=True)
    metadata = {"key": custom_id}
    if "error" in reply:  # a JobError: code and message
        error = {k: reply["error"][k] for k in ("code", "message")}
        return {"error": error, "metadata": metadata}
    server.check_component("GenerateContentResponse", reply)
    return {"response": reply, "metadata": metadata}


def unanswered_line(server: FakeBatchServer, custom_id: str, outcome: str) -> dict[str, Any]:
    return {"metadata": {"key": custom_id}}  # the operation's state says why
