"""The OpenAI side of :class:`~tests.support.batch_server.FakeBatchServer`: Chat Completions,
``/v1/files`` and ``/v1/batches`` (the shapes of OpenAI's API reference: the input file's
``{"custom_id", "method", "url", "body"}`` lines, the output file's
``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`` lines,
errors and expired requests in the error file)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx2

from .batch_server import CREATED, Job, user_text

if TYPE_CHECKING:
    from .batch_server import FakeBatchServer

_STATUS = {"completed": "completed", "expired": "expired", "cancelled": "cancelled"}


def route(server: FakeBatchServer, request: httpx2.Request, path: str) -> httpx2.Response:
    method = request.method
    if method == "POST" and path == "/chat/completions":
        body = json.loads(request.content)
        answer = server.answer_online(body)
        return server.json(answer, 400 if "error" in answer else 200)
    if method == "POST" and path == "/files":
        return _upload(server, request)
    parts = path.strip("/").split("/")
    if parts[0] == "files" and len(parts) >= 2:
        content = server.files.get(parts[1])
        if content is None:
            return _missing(server, f"No such File object: {parts[1]}")
        if len(parts) == 3 and parts[2] == "content":
            return httpx2.Response(
                200, content=content, headers={"content-type": "application/octet-stream"}
            )
        return server.json(_file(parts[1], content, "batch_output"))
    if method == "POST" and path == "/batches":
        return _create(server, json.loads(request.content))
    if parts[0] == "batches" and len(parts) >= 2:
        job = server.jobs.get(parts[1])
        if job is None:
            return _missing(server, f"No batch found with id '{parts[1]}'.")
        if method == "POST" and parts[-1] == "cancel":
            if job.status != "ended":
                job.status = "canceling"
            return server.json(batch_object(server, job))
        job.polls += 1
        if server.per_poll and job.status == "in_progress":
            server.complete(server.per_poll)
        return server.json(batch_object(server, job))
    return _missing(server, f"no route {method} {path}")


def _missing(server: FakeBatchServer, message: str) -> httpx2.Response:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return server.json({"error": error}, 404)


def _file(file_id: str, content: bytes, purpose: str) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": len(content),
        "created_at": CREATED,
        "filename": f"{file_id}.jsonl",
        "purpose": purpose,
        "status": "processed",
    }


def _upload(server: FakeBatchServer, request: httpx2.Request) -> httpx2.Response:
    purpose, content = server.parse_upload(request)
    assert purpose == "batch", purpose
    seen: set[str] = set()
    for n, raw in enumerate(content.decode().splitlines(), 1):
        line = json.loads(raw)
        assert set(line) == {"custom_id", "method", "url", "body"}, f"line {n}: {set(line)}"
        assert line["method"] == "POST" and line["url"] == "/v1/chat/completions", line["url"]
        assert line["custom_id"] not in seen, f"line {n}: duplicate custom_id"
        seen.add(line["custom_id"])
        server.check_component("BatchRequestInput", line, optional=True)
        server.check_component("CreateChatCompletionRequest", line["body"])
        assert not line["body"].get("stream"), "batch requests cannot stream"
    file_id = server.new_id("file-")
    server.files[file_id] = content
    return server.json(_file(file_id, content, "batch"))


def _create(server: FakeBatchServer, body: dict[str, Any]) -> httpx2.Response:
    content = server.files.get(body["input_file_id"])
    if content is None:
        return _missing(server, f"No such File object: {body['input_file_id']}")
    assert body["endpoint"] == "/v1/chat/completions" and body["completion_window"] == "24h"
    lines = [json.loads(raw) for raw in content.decode().splitlines()]
    job = Job(
        server.new_id("batch_"),
        [(line["custom_id"], line["body"]) for line in lines],
        input_file_id=body["input_file_id"],
    )
    server.jobs[job.id] = job
    return server.json(batch_object(server, job))


def batch_object(server: FakeBatchServer, job: Job) -> dict[str, Any]:
    """The Batch object of ``job``; its output and error files are made when it ends."""
    failed = sum(1 for line in job.results.values() if line.get("error") or _status(line) >= 400)
    data: dict[str, Any] = {
        "id": job.id,
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "input_file_id": job.input_file_id,
        "completion_window": "24h",
        "status": "in_progress" if job.status == "in_progress" else "cancelling",
        "created_at": CREATED,
        "expires_at": CREATED + 86_400,
        "request_counts": {
            "total": len(job.requests),
            "completed": len(job.results) - failed,
            "failed": failed,
        },
    }
    if job.status == "ended":
        data["status"] = "failed" if job.outcome == "failed" else _STATUS[job.outcome]
        data[f"{data['status']}_at"] = CREATED + 60
        if job.errors:  # the input failed validation: nothing ran, no files
            data["errors"] = {"object": "list", "data": job.errors}
        else:
            _write_files(server, job, data)
    server.check_component("Batch", data)
    return data


def _status(line: dict[str, Any]) -> int:
    return int((line.get("response") or {}).get("status_code") or 0)


def _write_files(server: FakeBatchServer, job: Job, data: dict[str, Any]) -> None:
    good = [line for line in job.results.values() if _status(line) == 200]
    bad = [line for line in job.results.values() if _status(line) != 200]
    for name, lines in (("output_file_id", good), ("error_file_id", bad)):
        if lines:
            file_id = f"file-{job.id}-{name[:3]}"
            server.files[file_id] = "".join(json.dumps(x) + "\n" for x in lines).encode()
            data[name] = file_id


def answer(server: FakeBatchServer, body: dict[str, Any], *, batch: bool) -> dict[str, Any]:
    text = user_text(body["messages"])
    if server.fails(text):
        error = {"message": "this prompt fails", "type": "invalid_request_error"}
        return {"error": {**error, "param": None, "code": None}}
    use = server.cache.openai(server.wire_text(body))
    reply = server.answer(text)
    model = body["model"]
    output = server.charge(model, use, reply, batch=batch)
    return {
        "id": server.new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": use.prompt,
            "completion_tokens": output,
            "total_tokens": use.prompt + output,
            "prompt_tokens_details": {"cached_tokens": use.read, "audio_tokens": 0},
        },
    }


def result_line(server: FakeBatchServer, custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = answer(server, body, batch=True)
    status = 400 if "error" in reply else 200
    if status == 200:
        server.check_component("CreateChatCompletionResponse", reply)
    line = {
        "id": server.new_id("batch_req_"),
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": server.new_id("req_"), "body": reply},
        "error": None,
    }
    server.check_component("BatchRequestOutput", line, optional=True)
    return line


def unanswered_line(server: FakeBatchServer, custom_id: str, outcome: str) -> dict[str, Any]:
    code = {"expired": "batch_expired", "cancelled": "batch_cancelled"}.get(outcome, "failed")
    message = {
        "batch_expired": "This request could not be executed before the completion window expired.",
        "batch_cancelled": "This request was not executed because the batch was cancelled.",
    }.get(code, "The batch failed.")
    line = {
        "id": server.new_id("batch_req_"),
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }
    server.check_component("BatchRequestOutput", line, optional=True)
    return line
