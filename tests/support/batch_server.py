"""A fake OpenAI, Anthropic or Gemini account, online and batch, as an httpx2 transport: chat
answers, the Batch APIs (OpenAI ``/v1/files`` + ``/v1/batches``, Anthropic
``/v1/messages/batches``, Gemini ``batchGenerateContent`` with inline requests),
prompt caching and billing by the published rules (:mod:`tests.support.billing`).

Every request the client sends is validated against the provider's own spec
(:class:`~tests.support.specs.SpecTransport`: uploads, job creation, retrieval, cancellation),
and so is every JSON answer; what the spec transport cannot see is validated here: each line
of an uploaded OpenAI input file (its ``body`` against ``CreateChatCompletionRequest``) and
each line of a result file (OpenAI's ``body`` against ``CreateChatCompletionResponse``,
Anthropic's lines against ``MessageBatchIndividualResponse``). ``validate=False`` skips all
of it (a benchmark of 10,000 rows).

Jobs never finish by themselves in real time: they complete on demand. ``complete(n)``
answers the next ``n`` pending requests of every running job (all of them by default) and
ends a job when none are left; ``expire()`` ends running jobs with their pending requests
expired; ``per_poll=n`` answers ``n`` requests each time the client asks for a job's status.
Requests whose prompt contains ``fail_when`` fail (an ``invalid_request_error`` line).

    server = FakeBatchServer("openai", answer=lambda text: "positive")
    client = lm.client("openai:gpt-4o-mini", transport=server.transport())
    ...; server.complete(); server.jobs, server.bill.usd, server.chat_requests
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2

from .billing import Bill, PromptCache, anthropic_prefixes, openai_wire_text, tokens
from .specs import SpecTransport, load_spec, parse_multipart

__all__ = ["FakeBatchServer", "Job", "user_text"]

CREATED = 1_700_000_000


def user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message (a string, or its text blocks joined)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
            return str(content or "")
    return ""


@dataclass
class Job:
    """One batch job: its requests by custom id, in order, and what became of them."""

    id: str
    requests: list[tuple[str, dict[str, Any]]]
    input_file_id: str | None = None
    status: str = "in_progress"  # in_progress | canceling | ended (OpenAI's words derived)
    outcome: str = "completed"  # completed | expired | cancelled | failed
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # custom id -> line
    errors: list[dict[str, Any]] = field(default_factory=list)
    polls: int = 0

    @property
    def pending(self) -> list[tuple[str, dict[str, Any]]]:
        return [(cid, body) for cid, body in self.requests if cid not in self.results]


class FakeBatchServer:
    """See the module docstring."""

    def __init__(
        self,
        provider: str = "openai",
        *,
        answer: Callable[[str], str] | None = None,
        fail_when: str | None = None,
        prompt_cache: bool = True,
        validate: bool = True,
        per_poll: int | None = None,
        min_cache_tokens: int = 1024,
        spec: str | None = None,
    ) -> None:
        if provider not in ("openai", "anthropic", "gemini"):
            raise ValueError("the fake batch server speaks openai, anthropic or gemini")
        self.provider = provider
        #: Whose spec the traffic is validated against (Groq's copy of OpenAI's API: "groq").
        self.spec = spec or provider
        self.answer = answer or (lambda text: f"A:{text}")
        self.fail_when = fail_when
        self.validate = validate
        self.per_poll = per_poll
        self.cache = PromptCache(enabled=prompt_cache, min_tokens=min_cache_tokens)
        self.bill = Bill()
        self.jobs: dict[str, Job] = {}
        self.files: dict[str, bytes] = {}
        self.chat_requests = 0
        self.chat_bodies: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self._ids = itertools.count(1)
        # The provider's side (imported here: those modules import this one).
        from . import _batch_anthropic, _batch_gemini, _batch_openai

        sides = {"openai": _batch_openai, "anthropic": _batch_anthropic, "gemini": _batch_gemini}
        self.side: Any = sides[provider]

    # --- control ---------------------------------------------------------------------------

    def transport(self) -> httpx2.BaseTransport:
        if self.validate:
            return SpecTransport(self.spec, self.handle)
        return httpx2.MockTransport(self.handle)

    def running(self) -> list[Job]:
        return [job for job in self.jobs.values() if job.status != "ended"]

    def complete(self, n: int | None = None) -> None:
        """Answer the next ``n`` pending requests (all by default) of every running job; a
        job being cancelled ends instead, its pending requests cancelled."""
        for job in self.running():
            if job.status == "canceling":
                self._end(job, "cancelled")
                continue
            for custom_id, body in job.pending[:n]:
                job.results[custom_id] = self._result(custom_id, body)
            if not job.pending:
                self._end(job, "completed")

    def expire(self) -> None:
        """End every running job: what was not answered yet expires."""
        for job in self.running():
            self._end(job, "expired")

    def fail_validation(self, message: str) -> None:
        """End every running job as failed, with ``message`` as its error (OpenAI)."""
        for job in self.running():
            job.errors.append({"code": "invalid_request", "message": message, "line": 1})
            self._end(job, "failed")

    def _end(self, job: Job, outcome: str) -> None:
        for custom_id, _ in job.pending:
            job.results[custom_id] = self._unanswered(custom_id, outcome)
        job.status, job.outcome = "ended", outcome

    # --- the HTTP surface ------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path.removeprefix("/openai").removeprefix("/v1")
        self.calls.append((request.method, path))
        response: httpx2.Response = self.side.route(self, request, path)
        return response

    def answer_online(self, body: dict[str, Any]) -> dict[str, Any]:
        self.chat_requests += 1
        self.chat_bodies.append(body)
        return self._answer(body, batch=False)

    def _answer(self, body: dict[str, Any], *, batch: bool) -> dict[str, Any]:
        """The answer body, or an error body when the prompt asks for a failure."""
        answer: dict[str, Any] = self.side.answer(self, body, batch=batch)
        return answer

    def _result(self, custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
        line: dict[str, Any] = self.side.result_line(self, custom_id, body)
        return line

    def _unanswered(self, custom_id: str, outcome: str) -> dict[str, Any]:
        line: dict[str, Any] = self.side.unanswered_line(self, custom_id, outcome)
        return line

    def fails(self, text: str) -> bool:
        return self.fail_when is not None and self.fail_when in text

    def check_component(self, name: str, instance: Any, *, optional: bool = False) -> None:
        """Validate ``instance`` against the spec's component ``name`` (``optional``: only
        when the spec has one, as Groq's has a schema of batch file lines)."""
        if not self.validate:
            return
        spec = load_spec(self.spec)
        if optional and not spec.has_component(name):
            return
        spec.validate_component(name, instance)

    def parse_upload(self, request: httpx2.Request) -> tuple[str, bytes]:
        """(purpose, file bytes) of a multipart upload."""
        fields = dict(parse_multipart(request.content, request.headers["content-type"]))
        upload = fields["file"]
        return str(fields["purpose"]), getattr(upload, "content", b"")

    def charge(self, model: str, use: Any, text: str, *, batch: bool) -> int:
        output = tokens(text)
        self.bill.charge(model, use, output, batch=batch)
        return output

    def wire_text(self, body: dict[str, Any]) -> Any:
        return openai_wire_text(body) if self.provider != "anthropic" else anthropic_prefixes(body)

    @staticmethod
    def json(data: Any, status: int = 200) -> httpx2.Response:
        return httpx2.Response(status, json=data)

    @staticmethod
    def jsonl(lines: list[dict[str, Any]], media_type: str) -> httpx2.Response:
        content = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return httpx2.Response(200, content=content, headers={"content-type": media_type})
