"""Many prompts on a Ray cluster (``df.llm.map(..., engine="ray")``): the driver side.

The driver has deduplicated the rows already (one prompt per unique request). It answers
what its cache holds, then sends the rest through Ray Data: a dataset of
``{"job", "prompt"}`` rows, ``map_batches`` over stateful async actors
(:class:`~llm_magics._batch.ray_worker.PromptWorker`, the package's own engine in each),
all of which ask one :class:`~llm_magics._batch.ray_coordinator.JobCoordinator` actor for
their keys. Answers stream back batch by batch; the driver finishes each one as the local
engine does (schema, ``convert``/``recover``, usage, budget), so the progress display, the
values, ``lm.usage()`` and the spending are the driver's, live.

Keys and the cache's URL reach the actors through a secrets file named in their runtime
environment, or their own environment (:mod:`llm_magics._batch.ray_spec`), never in
arguments or logs. Every answer is
cached by the worker that got it (Redis for a cluster; the disk cache when the actors run
on the driver's machine), so a job that is interrupted or fails is rerun by sending only
what is missing.

Ray is imported when a job starts, never with the package. Without a running cluster,
``ray.init()`` starts a local one (``RAY_ADDRESS`` names an existing one, as for Ray itself).

Thread safety: a job runs on the calling thread; its actors are its own.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .._cache.codec import decode_response
from .._client.budget import active_limits, spending_cap
from .._client.client import Client
from .._client.limits import NO_LIMITS
from .._client.pipeline import CacheMode
from .._core.errors import ConfigError, LLMError
from .._core.fmt import money
from .._core.secrets import mask_exception
from .._core.types import Response
from .answer import PromptAnswerer
from .lookahead import request_options
from .outcomes import BatchResult, ErrorMode, Outcomes
from .progress import NullProgress, Progress
from .ray_coordinator import JobCoordinator
from .ray_spec import ClientSpec, WorkerSecrets, portable_options
from .ray_worker import PromptWorker
from .stats import BatchStats

__all__ = [
    "RaySettings",
    "actor_count",
    "limit_reached",
    "quiet_ray_data",
    "ray_module",
    "run_on_ray",
    "settings",
    "start_coordinator",
]


class RaySettings:
    """How jobs use the cluster. ``actors``: actors per job (None: the cluster's CPUs, 2 to
    8); ``actor_cpus``: the CPU share each reserves (they wait on the network, not the CPU);
    ``time_scale``: the coordinator's clock runs this much faster (a test's virtual
    minute, as the fault server's)."""

    def __init__(self) -> None:
        self.actors: int | None = None
        self.actor_cpus = 0.25
        self.time_scale = 1.0


settings = RaySettings()


def ray_module() -> Any:
    """``ray``, imported now; a ConfigError saying what to install when it is missing."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise ConfigError(
            "engine='ray' needs Ray Data: pip install 'llm_magics[ray]' (or pip install "
            "'ray[data]')"
        ) from None
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, ignore_reinit_error=True)
    return ray


def actor_count(ray: Any, actors: int | None) -> int:
    if actors is not None:
        if not isinstance(actors, int) or actors < 1:
            raise ConfigError(f"actors= must be a whole number >= 1; got {actors!r}")
        return actors
    if settings.actors is not None:
        return settings.actors
    cpus = int(ray.cluster_resources().get("CPU", 2))
    return max(2, min(8, cpus))


def start_coordinator(ray: Any, client: Client) -> Any:
    """The job's coordinator actor, with the driver's limits for ``client``'s keys."""
    pool = client.keys
    remote = ray.remote(JobCoordinator).options(
        name=f"llm_magics-job-{uuid.uuid4().hex[:12]}", num_cpus=0, max_concurrency=10_000
    )
    return remote.remote(
        client.provider.name,
        len(pool) if pool is not None else 0,
        pool.limits_for(client.model) if pool is not None else NO_LIMITS,
        time_scale=settings.time_scale,
    )


def run_on_ray(
    client: Client,
    prompts: Sequence[Any],
    *,
    rows: Sequence[int],
    materialize: Callable[[Any], Any] | None,
    convert: Callable[[Response], Any],
    recover: Callable[[Response], Any] | None,
    cache: CacheMode,
    errors: ErrorMode,
    progress: Progress | None,
    stats: BatchStats,
    options: dict[str, Any],
    concurrency: int,
    actors: int | None = None,
    max_cost: float | None = None,
) -> BatchResult:
    """Answer every prompt of ``prompts`` (unique) on Ray; the result is the local engine's
    (:func:`~llm_magics._batch.fanout.run_batch`).

    Spending (``max_cost``, the kernel's ``lm.budget``) is counted here as answers arrive;
    when a limit is reached the coordinator stops handing out keys: requests in flight
    finish (so a limit can be passed by their answers, none of which is lost) and every
    prompt not sent by then says so in its error. A keyless provider has no coordinator
    pool to stop; its job is left where it stands."""
    ray = ray_module()
    n = len(prompts)
    stats.unique = n
    stats.cached = cache is not False and client.cache is not None
    progress = progress or NullProgress()
    outcomes = Outcomes(n, rows, stats, errors)
    answerer = PromptAnswerer(
        client, prompts, outcomes, materialize=materialize, convert=convert,
        recover=recover, cache=cache, options=dict(options),
    )  # fmt: skip
    shape = client.build_request("?", **request_options(options))  # schema, json_mode
    progress.start(stats)
    try:
        with spending_cap(max_cost):
            missing = _answer_cached(client, prompts, answerer, shape, cache, options)
            progress.update(stats)
            if missing:
                job = _Job(ray, client, prompts, missing, options, cache, concurrency, recover)
                _drain(job, actor_count(ray, actors), answerer, outcomes, shape, progress)
        stats.status = "done"
    except KeyboardInterrupt:
        stats.status = "interrupted"
        raise
    except BaseException as exc:
        stats.status = "failed"
        raise _cause(exc) from None
    finally:
        stats.finished = time.monotonic()
        with contextlib.suppress(Exception):  # a broken display must not hide the outcome
            progress.close(stats)
    return outcomes.result()


def _drain(
    job: _Job,
    actors: int,
    answerer: PromptAnswerer,
    outcomes: Outcomes,
    shape: Any,
    progress: Progress,
) -> None:
    """Take the job's answers as they come; stop sending when a spending limit is reached."""
    reached: str | None = None
    unreturned = set(job.missing)
    for batch in job.batches(actors):
        unreturned.difference_update(_take_batch(batch, job.prompts, answerer, outcomes, shape))
        progress.update(outcomes.stats)
        reached = limit_reached()
        if reached is not None and not job.stop(reached):
            break  # no shared key pool to stop it: leave what is in flight
    if reached is not None:
        for i in sorted(unreturned):  # never sent, or sent and left behind
            outcomes.fail_text(i, reached)


def limit_reached() -> str | None:
    """The error text for the rows not sent when a spending limit is used up, else None."""
    for limit in active_limits():
        if limit.remaining is not None and limit.remaining <= 0:
            return (
                f"BudgetExceededError: not answered: {limit.what} of {money(limit.usd or 0)} "
                f"is reached ({money(limit.spent)} spent); {limit.how_to_raise}: answered "
                "rows are kept in the cache."
            )
    return None


def _answer_cached(
    client: Client,
    prompts: Sequence[Any],
    answerer: PromptAnswerer,
    shape: Any,
    cache: CacheMode,
    options: dict[str, Any],
) -> list[int]:
    """Answer the plain-text prompts the driver's cache holds; the others' indices."""
    if cache is False or cache == "refresh" or client.cache is None:
        return list(range(len(prompts)))
    texts = [i for i, p in enumerate(prompts) if isinstance(p, str)]
    opts = request_options(options)
    requests = [client.build_request(prompts[i], **opts) for i in texts]
    hits = {
        i: p.hit
        for i, p in zip(texts, client.pipeline.prepare_many(requests, cache), strict=True)
        if p.hit is not None
    }
    for i, hit in hits.items():
        answerer.take(i, prompts[i], shape, hit, None)
    return [i for i in range(len(prompts)) if i not in hits]


class _Job:
    """The Ray side of one run: coordinator, dataset, actors."""

    def __init__(
        self,
        ray: Any,
        client: Client,
        prompts: Sequence[Any],
        missing: list[int],
        options: dict[str, Any],
        cache: CacheMode,
        concurrency: int,
        recover: Callable[[Response], Any] | None,
    ) -> None:
        self._ray = ray
        self._client = client
        self.prompts = prompts
        self.missing = missing
        self._items = [{"job": i, "prompt": prompts[i]} for i in missing]
        self._coordinator: Any = None
        self._worker_kwargs = {
            "options": portable_options(options), "cache": cache,
            "concurrency": concurrency, "recover": recover is not None,
        }  # fmt: skip

    def stop(self, reason: str) -> bool:
        """Send nothing more; False when the job has no shared key pool to stop."""
        if self._coordinator is None or self._client.keys is None:
            return False
        self._coordinator.stop.remote(reason)
        return True

    def batches(self, actors: int) -> Iterator[dict[str, Any]]:
        ray, client = self._ray, self._client
        spec = ClientSpec.of(client)
        coordinator = self._coordinator = start_coordinator(ray, client)
        size = max(1, min(256, -(-len(self._items) // (actors * 8))))
        try:
            with WorkerSecrets(client) as secrets, quiet_ray_data(ray):
                dataset = ray.data.from_items(self._items).map_batches(
                    PromptWorker,
                    fn_constructor_kwargs={
                        "spec": secrets.locate(spec), "coordinator": coordinator,
                        **self._worker_kwargs,
                    },
                    batch_size=size,
                    compute=ray.data.ActorPoolStrategy(size=actors),
                    num_cpus=settings.actor_cpus,
                )  # fmt: skip
                for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                    # Python values, not numpy's (a column of all-None answers is no float).
                    yield {name: table.column(name).to_pylist() for name in table.column_names}
        finally:
            ray.kill(coordinator)


@contextlib.contextmanager
def quiet_ray_data(ray: Any) -> Iterator[None]:
    """Ray Data's own progress bars off while a job runs: the package shows its own."""
    context = ray.data.DataContext.get_current()
    before = context.enable_progress_bars
    context.enable_progress_bars = False
    try:
        yield
    finally:
        context.enable_progress_bars = before


def _take_batch(
    batch: dict[str, Any],
    prompts: Sequence[Any],
    answerer: PromptAnswerer,
    outcomes: Outcomes,
    shape: Any,
) -> list[int]:
    """Finish a returned batch's answers; the prompts it held."""
    jobs = [int(job) for job in batch["job"]]
    for i, answer, cached, error in zip(
        jobs, batch["answer"], batch["cached"], batch["error"], strict=True
    ):
        if answer is None:
            outcomes.fail_text(i, str(error))
            continue
        response = decode_response(answer.encode("utf-8", "surrogatepass"))
        if response is None:
            outcomes.fail_text(i, "LLMError: a Ray worker's answer could not be read back")
            continue
        response.cached = bool(cached)
        answerer.take(i, prompts[i], shape, response, None)
    return jobs


def _cause(exc: BaseException) -> BaseException:
    """The package's own error inside a Ray failure (a worker's ConfigError, say), else the
    failure itself; either way with any secret masked."""
    current: BaseException | None = exc
    found: BaseException = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, LLMError):
            found = current
            break
        current = current.__cause__ or current.__context__
    mask_exception(found)
    return found
