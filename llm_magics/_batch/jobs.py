"""Many prompts as provider Batch API jobs (``mode="batch"``): half the price, answers within
the provider's window (24 h), the same guarantees as the online engine
(:mod:`llm_magics._batch.fanout`) where they make sense.

The phases of :func:`run_jobs`:

1. **Requests and the cache.** Each unique prompt's request is built as an online call builds
   it and looked up in the response cache under the same key; answered prompts are settled at
   once and never submitted. A prompt whose request cannot be built fails alone.
2. **Resume or submit.** The call's digest (:func:`~llm_magics._batch.job_store.call_digest`
   over the custom ids of all its requests) names its record in the
   :class:`~llm_magics._batch.job_store.JobStore`. A record means jobs were started before
   (a rerun, a restarted kernel): they are waited on again, and only requests no job holds
   are submitted. Otherwise the requests go out in jobs of at most the vendor's limits
   (requests and bytes per job, from its catalog entry), and the record is written as soon as
   each job exists, so an interrupt never loses a job. ``wait=False`` stops here and returns
   a :class:`~llm_magics._batch.job_handle.JobHandle`.
3. **Waiting.** Each running job is asked about at growing intervals
   (:class:`~llm_magics._batch.job_wire.JobPolling`); the progress display shows requests
   done, failed, expired and the ETA. An interrupt leaves the jobs running and the record in
   place: the same call resumes waiting.
4. **Results.** Each answer is billed at the batch price, finished like an online answer
   (schema parse, accounting, the budget), cached under the online key, and converted;
   requests the job failed, expired or cancelled get their error text (a rerun sends them
   again, in a new job). The record is then deleted.

Thread safety: one run on one event loop, like the online engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._client.client import Client
from .._client.pipeline import CacheMode
from .._client.pricing import cost_of
from .._core.batch import BatchItem, BatchJob
from .._core.errors import LLMError, ProviderError
from .._core.secrets import APIKey
from .._core.types import ChatRequest, MediaPart, Response, TextPart
from .._runtime.http import Timeouts
from .answer import PromptAnswerer
from .job_handle import JobHandle
from .job_store import JobRecord, JobStore, call_digest
from .job_wire import JobWire, polls
from .lookahead import request_options
from .outcomes import BatchResult, ErrorMode, Outcomes
from .progress import NullProgress, Progress
from .stats import BatchStats, JobProgress

__all__ = ["run_jobs"]

#: Of a vendor's byte limit per job, the share used (request sizes are estimated).
BYTES_MARGIN = 0.9

_NOT_ANSWERED = {
    "expired": "not answered: the batch job's window ran out before this request ran; run "
    "the same call again to send it in a new job",
    "canceled": "not answered: the batch job was cancelled before this request ran; run the "
    "same call again to send it in a new job",
}


@dataclass
class _Unsent:
    """One unique request that needs the provider: the prompts that share it."""

    custom_id: str
    request: ChatRequest
    cache_key: str | None
    prompt: Any
    indices: list[int] = field(default_factory=list)


async def run_jobs(
    client: Client,
    prompts: Sequence[Any],
    *,
    store: JobStore,
    rows: Sequence[int] | None = None,
    materialize: Callable[[Any], Any] | None = None,
    convert: Callable[[Response], Any] = lambda r: r.text,
    recover: Callable[[Response], Any] | None = None,
    cache: CacheMode = True,
    errors: ErrorMode = "column",
    progress: Progress | None = None,
    stats: BatchStats | None = None,
    options: dict[str, Any] | None = None,
    wait: bool = True,
) -> BatchResult | JobHandle:
    """Answer ``prompts`` through provider batch jobs (see the module docstring); arguments
    as for :func:`~llm_magics._batch.fanout.run_batch`. ``wait=False``: return the jobs'
    handle once they are submitted (or found), without waiting for them."""
    if not client.provider.supports_batch:
        raise client.provider.unsupported(
            "provider Batch API jobs (mode='batch')", "Use mode='online' for this model."
        )
    weights = list(rows) if rows is not None else [1] * len(prompts)
    stats = stats or BatchStats(total=sum(weights))
    stats.unique = len(prompts)
    stats.cached = cache is not False and client.cache is not None
    outcomes = Outcomes(len(prompts), weights, stats, errors)
    answerer = PromptAnswerer(
        client, prompts, outcomes, materialize=materialize, convert=convert, recover=recover,
        cache=cache, options=dict(options or {}),
    )  # fmt: skip
    run = _JobRun(client, prompts, weights, answerer, outcomes, stats, store)
    progress = progress or NullProgress()
    progress.start(stats)
    try:
        handle = await run.start(materialize, cache, dict(options or {}))
        if handle is not None and not wait:
            stats.status = "done"
            return handle
        if handle is not None:
            await run.wait(progress)
            await run.collect()
        stats.status = "done"
    except asyncio.CancelledError:
        stats.status = "interrupted"
        raise
    except BaseException:
        stats.status = "failed"
        raise
    finally:
        stats.finished = time.monotonic()
        with contextlib.suppress(Exception):
            progress.close(stats)
    return outcomes.result()


class _JobRun:
    """The state of one batch-mode run (see the module docstring)."""

    def __init__(
        self,
        client: Client,
        prompts: Sequence[Any],
        weights: Sequence[int],
        answerer: PromptAnswerer,
        outcomes: Outcomes,
        stats: BatchStats,
        store: JobStore,
    ) -> None:
        self.client = client
        self.provider = client.provider
        self.prompts = prompts
        self.weights = weights
        self.answerer = answerer
        self.outcomes = outcomes
        self.stats = stats
        self.store = store
        self.unsent: dict[str, _Unsent] = {}
        self.record: JobRecord | None = None
        self.wire = JobWire(client)
        self.jobs: dict[str, BatchJob] = {}

    # --- 1 and 2: requests, the cache, resume or submit ------------------------------------

    async def start(
        self, materialize: Callable[[Any], Any] | None, cache: CacheMode, options: dict[str, Any]
    ) -> JobHandle | None:
        """Settle what the cache answers; find or start the jobs for the rest (None: nothing
        is left to send)."""
        every = self._requests(materialize, cache, request_options(options))
        if not self.unsent:
            return None
        provider, pipeline = self.provider, self.client.pipeline
        digest = call_digest(provider.name, provider.base_url, pipeline.model, every)
        record = self.store.load(digest)
        if record is None:
            record = JobRecord(digest, provider.name, provider.base_url, pipeline.model)
        self.record = record
        self.wire = JobWire(self.client, record.key)
        missing = [u for cid, u in self.unsent.items() if cid not in record.submitted()]
        if missing:
            await self._submit(missing)
        return JobHandle(self.client, record)

    def _requests(
        self, materialize: Callable[[Any], Any] | None, cache: CacheMode, options: dict[str, Any]
    ) -> list[str]:
        """Build every prompt's request, settle the cached ones; the custom ids of all."""
        pipeline = self.client.pipeline
        built: list[tuple[int, Any, ChatRequest]] = []
        for i, prompt in enumerate(self.prompts):
            try:
                sent = materialize(prompt) if materialize is not None else prompt
                built.append((i, sent, self.client.build_request(sent, **options)))
            except (LLMError, ValueError, OSError) as exc:
                self.outcomes.fail(i, exc, False)
        prepared = pipeline.prepare_many([request for _, _, request in built], cache)
        every: list[str] = []
        for (i, sent, request), ready in zip(built, prepared, strict=True):
            custom_id = _custom_id(ready.cache_key, request)
            every.append(custom_id)
            if ready.hit is not None:
                self.answerer.accept(i, pipeline.finish(ready.hit, request, time.perf_counter()))
                continue
            unsent = self.unsent.setdefault(
                custom_id, _Unsent(custom_id, request, ready.cache_key, sent)
            )
            unsent.indices.append(i)
        return every

    async def _submit(self, missing: list[_Unsent]) -> None:
        assert self.record is not None
        self.stats.job = JobProgress(status="submitting")
        for chunk in _chunks(missing, self.provider.batch_policy):
            items = [(u.custom_id, u.request) for u in chunk]

            async def send(
                key: APIKey | None, timeouts: Timeouts, items: list[Any] = items
            ) -> BatchJob:
                return await self.provider.batch_submit(items, key, timeouts)

            job = await self.wire.call(send, files=True)
            self.record.key = self.wire.fingerprint
            self.record.jobs.append({"id": job.id, "custom_ids": [u.custom_id for u in chunk]})
            self.store.save(self.record)  # before anything else: a job is never lost
            self.jobs[job.id] = job
        progress = self.stats.job
        progress.jobs, progress.requests = len(self.record.jobs), len(self.unsent)
        progress.status = "submitted"

    # --- 3: waiting ------------------------------------------------------------------------

    async def wait(self, progress: Progress) -> None:
        """Ask about each running job until all have ended, showing where they are."""
        assert self.record is not None
        polling = polls()
        pause = polling.first
        rows = sum(self.weights[i] for u in self.unsent.values() for i in u.indices)
        self.stats.job = self.stats.job or JobProgress()
        self.stats.job.rows = rows
        while True:
            for job_id in self.record.job_ids:
                if job_id not in self.jobs or not self.jobs[job_id].ended:
                    self.jobs[job_id] = await self._look(job_id)
            self._show(progress)
            if all(job.ended for job in self.jobs.values()):
                return
            await polling.sleep(pause)
            pause = min(pause * polling.factor, polling.longest)

    async def _look(self, job_id: str) -> BatchJob:
        async def look(key: APIKey | None, timeouts: Timeouts) -> BatchJob:
            return await self.provider.batch_status(job_id, key, timeouts)

        try:
            return await self.wire.call(look)
        except ProviderError as exc:
            if exc.status_code != 404:
                raise
            # The provider no longer knows the job (another account, deleted): its rows fail
            # with the reason, and a rerun starts afresh.
            reason = f"the provider does not know the batch job {job_id} ({exc.message})"
            return BatchJob(job_id, "unknown", True, 0, error=reason)

    def _show(self, progress: Progress) -> None:
        job = self.stats.job
        assert job is not None
        jobs = list(self.jobs.values())
        job.jobs = len(jobs)
        job.requests = sum(j.requests for j in jobs) or len(self.unsent)
        job.succeeded = sum(j.succeeded for j in jobs)
        job.failed = sum(j.failed for j in jobs)
        job.expired = sum(j.expired for j in jobs)
        job.canceled = sum(j.canceled for j in jobs)
        job.status = ", ".join(sorted({j.status for j in jobs}))
        refresh = getattr(progress, "refresh", None)
        (refresh or progress.update)(self.stats)

    # --- 4: results ------------------------------------------------------------------------

    async def collect(self) -> None:
        """Every ended job's results into the outcomes and the cache; then forget the jobs."""
        assert self.record is not None
        requests = {cid: u.request for cid, u in self.unsent.items()}
        settled: set[str] = set()
        for job_id in self.record.job_ids:
            job = self.jobs[job_id]
            items: list[BatchItem] = []
            if job.results:

                async def fetch(
                    key: APIKey | None, timeouts: Timeouts, job: BatchJob = job
                ) -> list[BatchItem]:
                    return await self.provider.batch_results(job, requests, key, timeouts)

                items = await self.wire.call(fetch, files=True)
            for item in items:
                if item.custom_id in self.unsent and item.custom_id not in settled:
                    settled.add(item.custom_id)
                    self._settle(item)
            reason = job.error or "the batch job ended without a result for this request"
            for custom_id in self._custom_ids(job_id):
                if custom_id in self.unsent and custom_id not in settled:
                    settled.add(custom_id)
                    self._fail(custom_id, f"not answered: {reason}")
        self.stats.job = None
        self.store.delete(self.record.digest)

    def _custom_ids(self, job_id: str) -> list[str]:
        assert self.record is not None
        for job in self.record.jobs:
            if str(job["id"]) == job_id:
                return [str(c) for c in job.get("custom_ids", ())]
        return []

    def _settle(self, item: BatchItem) -> None:
        if item.kind != "succeeded" or item.response is None:
            message = (
                _NOT_ANSWERED.get(item.kind) or f"the batch job could not answer: {item.error}"
            )
            self._fail(item.custom_id, message)
            return
        unsent = self.unsent[item.custom_id]
        response = item.response
        response.cost = cost_of(response, batch=True)
        first, *others = unsent.indices
        self.answerer.take(first, unsent.prompt, unsent.request, response, unsent.cache_key)
        for i in others:  # prompts that made the same request: answered once, shared
            self.answerer.accept(i, dataclasses.replace(response, cached=True))

    def _fail(self, custom_id: str, message: str) -> None:
        error = ProviderError(message, provider=self.provider.name, model=self.client.model)
        for i in self.unsent[custom_id].indices:
            self.outcomes.fail(i, error, False)


def _custom_id(cache_key: str | None, request: ChatRequest) -> str:
    """A request's id in a job: a prefix of its response-cache key (letters and digits, as
    every provider allows), or of the digest of its fingerprint when there is no cache."""
    if cache_key is None:
        from .._cache.codec import request_digest

        cache_key = request_digest(request.fingerprint())
    return "k" + cache_key[:48]


def _size(request: ChatRequest) -> int:
    """About how many bytes the request takes in a job (base64 media a third more)."""
    total = 400 + len(request.system or "")
    for message in request.messages:
        for part in message.parts:
            if isinstance(part, TextPart):
                total += len(part.text) + 8
            elif isinstance(part, MediaPart) and part.data is not None:
                total += len(part.data) * 4 // 3 + 64
    if request.schema is not None:
        total += len(str(request.schema.json_schema))
    return total


def _chunks(unsent: list[_Unsent], policy: Any) -> list[list[_Unsent]]:
    """``unsent`` in jobs within the vendor's limits of requests and bytes per job."""
    most = policy.max_requests if policy is not None else len(unsent)
    room = policy.max_bytes * BYTES_MARGIN if policy is not None else float("inf")
    chunks: list[list[_Unsent]] = [[]]
    used = 0.0
    for item in unsent:
        size = _size(item.request)
        if chunks[-1] and (len(chunks[-1]) >= most or used + size > room):
            chunks.append([])
            used = 0.0
        chunks[-1].append(item)
        used += size
    return [chunk for chunk in chunks if chunk]
