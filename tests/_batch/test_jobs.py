"""The batch-job engine against the fake provider account: requests split into jobs within
the vendor's limits (requests and bytes per job), a job the provider failed as a whole or no
longer knows gives each of its rows the reason, and a failed poll is retried as the client
retries."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx2

import llm_magics as lm
from llm_magics._batch.job_store import JobRecord, call_digest, store_for
from llm_magics._batch.job_wire import JobPolling
from llm_magics._batch.jobs import run_jobs
from llm_magics._batch.outcomes import BatchResult
from llm_magics._core.session import SESSION
from llm_magics._runtime import loop
from llm_magics._runtime.retry import RetryPolicy
from llm_magics.providers.catalog import MB, VENDORS, BatchPolicy
from tests.support.batch_server import FakeBatchServer
from tests.support.faults import Sleeps

KEY = "sk-jobs-test-SENTINEL-000011112222"


def finishing(server: FakeBatchServer) -> None:
    async def sleep(seconds: float) -> None:
        server.complete()

    SESSION.put(JobPolling, JobPolling(sleep=sleep))


def client(server: FakeBatchServer, policy: BatchPolicy | None = None, **options: Any) -> Any:
    c = lm.client("openai:gpt-4o-mini", api_key=KEY, transport=server.transport(), **options)
    if policy is not None:
        c.provider.vendor = dataclasses.replace(VENDORS["openai"], batch=policy)
    return c


def run(c: Any, prompts: list[str]) -> BatchResult:
    result = loop.run(run_jobs(c, prompts, store=store_for(c.cache)))
    assert isinstance(result, BatchResult)
    return result


def test_requests_go_out_in_jobs_within_the_vendors_request_limit() -> None:
    server = FakeBatchServer("openai", answer=lambda text: "ok")
    finishing(server)
    result = run(client(server, BatchPolicy(3, 200 * MB)), [f"question {i}" for i in range(7)])
    assert [len(job.requests) for job in server.jobs.values()] == [3, 3, 1]
    assert result.values == ["ok"] * 7 and result.errors == [None] * 7


def test_requests_go_out_in_jobs_within_the_vendors_byte_limit() -> None:
    server = FakeBatchServer("openai", answer=lambda text: "ok")
    finishing(server)
    prompts = [f"question {i} " + "x" * 1_000 for i in range(6)]
    run(client(server, BatchPolicy(100, 4_000)), prompts)
    sizes = [len(server.files[job.input_file_id or ""]) for job in server.jobs.values()]
    assert len(sizes) == 3 and max(sizes) <= 4_000


def test_a_job_that_failed_as_a_whole_gives_each_row_its_reason() -> None:
    server = FakeBatchServer("openai", answer=lambda text: "ok")

    async def rejected(seconds: float) -> None:
        server.fail_validation("line 1: the model gpt-4o-mini is not available in batches")

    SESSION.put(JobPolling, JobPolling(sleep=rejected))
    result = run(client(server), ["one", "two"])
    assert result.values == [None, None]
    assert all(
        e and "not answered: line 1: the model gpt-4o-mini is not available" in e
        for e in result.errors
    )
    assert store_for(client(server).cache).records() == []  # a rerun starts afresh


def test_a_recorded_job_the_provider_no_longer_knows_fails_its_rows_with_the_reason() -> None:
    server = FakeBatchServer("openai", answer=lambda text: "ok")
    finishing(server)
    c = client(server)
    request = c.build_request("one")
    custom_id = "k" + c.pipeline.cache_key(request, True)[:48]
    digest = call_digest("openai", c.provider.base_url, "gpt-4o-mini", [custom_id])
    record = JobRecord(digest, "openai", c.provider.base_url, "gpt-4o-mini")
    record.jobs.append({"id": "batch_gone", "custom_ids": [custom_id]})
    store_for(c.cache).save(record)
    result = run(c, ["one"])
    (error,) = result.errors
    assert error and "does not know the batch job batch_gone" in error
    assert not server.jobs  # nothing was submitted in its place: no surprise spend
    assert run(c, ["one"]).values == ["ok"]  # the next call starts a new job


def test_a_failed_look_at_a_job_is_retried_as_the_client_retries() -> None:
    server = FakeBatchServer("openai", answer=lambda text: "ok")
    finishing(server)
    failures = {"left": 1}
    inner = server.handle

    async def flaky(request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET" and "/batches/" in request.url.path and failures["left"]:
            failures["left"] -= 1
            body = {
                "error": {"message": "busy", "type": "server_error", "param": None, "code": None}
            }
            return httpx2.Response(500, json=body)
        return await inner(request)

    server.handle = flaky  # type: ignore[method-assign]
    sleeps = Sleeps()
    retry = RetryPolicy(max_retries=2, sleep=sleeps)
    result = run(client(server, retry=retry), ["one"])
    assert result.values == ["ok"] and len(sleeps.delays) == 1
