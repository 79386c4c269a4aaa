"""``lm.ray.map(dataset, template, ...)``: a column of answers for a ``ray.data.Dataset``
whose rows stay in the cluster.

Each batch is rendered on its worker with the row templates of ``df.llm``
(:func:`~llm_magics.dataframe.plan.build_plan`: placeholders, missing input, a callable
template shipped by Ray's cloudpickle), deduplicated, and its unique prompts are
``claim``ed at the job's :class:`~llm_magics._batch.ray_coordinator.JobCoordinator`: a
prompt is sent by the first worker that claims it, anywhere in the cluster, and every other
row that renders to it waits for that answer. Failed rows are data (``<out>_error``); the
dataset never fails for one row. A structured-output schema gives one column per field, as
in ``df.llm.extract`` (parsed as a JSON schema on the workers: a notebook's pydantic model
never has to be importable there).

An ``lm.Template`` is bound on the driver, where a variable no column or keyword fills is
an error before anything runs, and bound again on each worker from the template, the call's
``columns=`` and keyword values (what a bound template holds does not pickle).

The call runs the job to the end and returns the materialized Dataset, so its progress is
shown live from the driver (the workers report to the coordinator, which the driver reads as
blocks arrive) and its usage and cost are in ``lm.usage()`` when it returns. Spending is
counted there too: when ``max_cost`` or the kernel's ``lm.budget`` is used up the coordinator
hands out no more keys, and the rows not sent by then say so in ``<out>_error`` (the rows
are never rendered on the driver, so there is no estimate to refuse a call before it runs).
A rerun sends only what the response cache does not hold (Redis for a cluster).

Thread safety: a job runs on the calling thread; each actor renders and answers on its own
event loop.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any

import pandas as pd

from .._batch.fanout import DEFAULT_CONCURRENCY, run_batch
from .._batch.outcomes import BatchResult, account
from .._batch.progress import Progress
from .._batch.ray_engine import (
    actor_count,
    limit_reached,
    quiet_ray_data,
    ray_module,
    settings,
    start_coordinator,
)
from .._batch.ray_spec import ClientSpec, WorkerSecrets, portable_options
from .._batch.ray_worker import BATCHES_PER_ACTOR, WorkerClient
from .._batch.stats import BatchStats
from .._chat.templates.template import Template as PromptTemplate
from .._client.budget import spend, spending_cap
from .._client.pipeline import CacheMode
from .._client.usage import ResponseHooks
from .._core.errors import ConfigError
from .._core.session import SESSION
from .._core.types import Response, Usage
from .columns import Fields, assign, check_out, object_series
from .plan import NaRule, build_plan
from .run import _chat_options, _progress, resolve_client
from .template import materialize
from .templated import TemplateBinding, empty_frame

__all__ = ["RayNamespace", "map_dataset", "ray", "spread"]


class RayNamespace:
    """``lm.ray``: the package's calls on a Ray cluster."""

    def map(self, dataset: Any, template: Any, **options: Any) -> Any:
        """See :func:`map_dataset`."""
        return map_dataset(dataset, template, **options)

    def __repr__(self) -> str:
        return "<lm.ray: map(dataset, template, ...) on Ray Data>"


ray = RayNamespace()


def map_dataset(
    dataset: Any,
    template: str | Callable[[Any], Any] | PromptTemplate,
    *,
    model: Any = None,
    out: str | None = None,
    schema: Any = None,
    system: str | None = None,
    concurrency: int | None = None,
    cache: CacheMode = True,
    progress: Any = True,
    na: NaRule = "skip",
    columns: Mapping[str, Hashable] | None = None,
    max_cost: float | None = None,
    actors: int | None = None,
    batch_size: int = 64,
    temperature: float | None = None,
    max_tokens: int | None = None,
    **options: Any,
) -> Any:
    """Answer ``template`` (a string with ``{column}`` placeholders, a function row ->
    prompt, or an ``lm.Template``) for every row of ``dataset``; the materialized Dataset
    with column ``out`` (default ``"llm"``; with ``schema``, one column per field) and
    ``<out>_error``.

    Options as for ``df.llm.map`` (an ``lm.Template``'s variables by ``columns=`` or as
    keywords); ``max_cost``: stop sending once this many USD are spent; ``actors``: Ray
    actors (default: the cluster's CPUs, 2 to 8), ``concurrency`` requests in flight in
    each; ``batch_size``: rows per batch.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size= must be a whole number >= 1; got {batch_size!r}")
    ray_api = ray_module()
    if not isinstance(dataset, ray_api.data.Dataset):
        raise ConfigError(
            f"lm.ray.map takes a ray.data.Dataset; got {type(dataset).__name__}. For a pandas "
            "DataFrame use df.llm.map(..., engine='ray')"
        )
    client = resolve_client(model)
    names = tuple(dataset.schema().names)
    renders: str | Callable[[Any], Any] | TemplateBinding
    if isinstance(template, PromptTemplate):
        renders = TemplateBinding.of(names, template, options, columns)
        system = renders.system_after(system)
    elif columns is not None:
        raise ConfigError(
            "columns= maps the variables of an lm.Template to columns; with a string "
            "template, write the column names in its {placeholders}"
        )
    else:
        renders = template
    # The workers' first render, here: an unknown column is this call's error, not a
    # failed Ray task.
    build_plan(empty_frame(names), _renderer(renders), na=na)
    options.update(temperature=temperature, max_tokens=max_tokens)
    opts = portable_options(_chat_options(options, system, schema))
    fields = Fields.of(opts["schema"], out) if schema is not None else None
    column = check_out(out, "llm") if fields is None else None
    width = concurrency or getattr(client.provider, "max_concurrency", None) or DEFAULT_CONCURRENCY
    job = _DatasetJob(ray_api, client, dataset, actors, batch_size)
    worker = {
        "template": renders, "fields": fields, "column": column, "options": opts,
        "cache": cache, "concurrency": width, "na": na,
    }  # fmt: skip
    with spending_cap(max_cost):
        return job.run(worker, _progress(progress, "llm ray"))


def _renderer(template: Any) -> Any:
    """What ``build_plan`` renders rows with: a binding's template bound."""
    return template.rows() if isinstance(template, TemplateBinding) else template


class _DatasetJob:
    def __init__(
        self, ray_api: Any, client: Any, dataset: Any, actors: int | None, batch_size: int
    ) -> None:
        self._ray = ray_api
        self._client = client
        self._dataset = dataset
        self._actors = actor_count(ray_api, actors)
        self._batch_size = batch_size
        self._stopped = False

    def run(self, worker: dict[str, Any], progress: Progress | None) -> Any:
        ray_api, client = self._ray, self._client
        stats = BatchStats(total=self._dataset.count(), model=client.model_id)
        spec = ClientSpec.of(client)
        coordinator = start_coordinator(ray_api, client)
        if progress is not None:
            progress.start(stats)
        try:
            with WorkerSecrets(client) as secrets, quiet_ray_data(ray_api):
                answered = spread(self._dataset, self._actors).map_batches(
                    RowWorker,
                    fn_constructor_kwargs={
                        "spec": secrets.locate(spec),
                        "coordinator": coordinator,
                        **worker,
                    },
                    batch_size=self._batch_size,
                    batch_format="pandas",
                    compute=ray_api.data.ActorPoolStrategy(size=self._actors),
                    num_cpus=settings.actor_cpus,
                )
                blocks = list(self._blocks(answered, coordinator, stats, progress))
            stats.status = "done"
        except BaseException:
            stats.status = "failed"
            raise
        finally:
            stats.finished = time.monotonic()
            if progress is not None:
                progress.close(stats)
            ray_api.kill(coordinator)
        if not blocks:
            return answered.materialize()
        if isinstance(ray_api.get(blocks[0]), pd.DataFrame):
            return ray_api.data.from_pandas_refs(blocks)
        return ray_api.data.from_arrow_refs(blocks)

    def _blocks(
        self, answered: Any, coordinator: Any, stats: BatchStats, progress: Progress | None
    ) -> Iterator[Any]:
        """The answered blocks as they are produced, with the totals read at each."""
        for bundle in answered.iter_internal_ref_bundles():
            yield from bundle.block_refs
            self._fold(coordinator, stats)
            if progress is not None:
                progress.update(stats)
        self._fold(coordinator, stats)

    def _fold(self, coordinator: Any, stats: BatchStats) -> None:
        """The coordinator's totals into the progress stats, its usage records into this
        kernel's ``lm.usage()`` and spending."""
        ray_api = self._ray
        totals, records = ray_api.get(
            [coordinator.progress.remote(), coordinator.take_usage.remote()]
        )
        stats.done, stats.errors = totals["rows"], totals["errors"]
        hooks = SESSION.get(ResponseHooks)
        for record in records:
            response = _usage_response(record)
            hooks.run(response)  # prices it with this kernel's prices, counts it in lm.usage()
            spend(response)
            account(stats, response)
        reached = limit_reached() if records else None
        if reached is not None and not self._stopped:
            self._stopped = True
            coordinator.stop.remote(reached)


def spread(dataset: Any, actors: int) -> Any:
    """``dataset``, split so that every actor gets work: Ray Data runs one task per block, so
    ``ray.data.from_pandas(df)`` (one block) would keep all its rows on one actor. Only a
    materialized Dataset is split (its blocks are in memory already, the split copies no
    more than them); a lazy one keeps the blocks its source reads."""
    from ray.data.dataset import MaterializedDataset

    wanted = actors * BATCHES_PER_ACTOR
    if isinstance(dataset, MaterializedDataset) and dataset.num_blocks() < wanted:
        return dataset.repartition(wanted)
    return dataset


def _usage_response(record: dict[str, Any]) -> Response:
    usage = Usage(
        record["input_tokens"], record["output_tokens"],
        record["cached_input_tokens"], record["cache_write_tokens"],
    )  # fmt: skip
    response = Response(text="", model=record["model"], provider=record["provider"], usage=usage)
    response.cached = record["cached"]
    response.cost = record["cost"] if response.cached else None  # priced by this kernel
    return response


class RowWorker:
    """``map_batches`` callable class: renders a pandas batch, answers its prompts once per
    cluster, and returns the batch with the answer columns."""

    def __init__(
        self,
        spec: ClientSpec,
        coordinator: Any,
        *,
        template: Any,
        fields: Fields | None,
        column: str | None,
        options: dict[str, Any],
        cache: CacheMode,
        concurrency: int,
        na: NaRule,
    ) -> None:
        self._client = WorkerClient(spec, coordinator).client
        self._coordinator = coordinator
        self._template = _renderer(template)
        self._fields = fields
        self._column = column
        self._options = options
        self._cache = cache
        self._width = max(1, -(-concurrency // BATCHES_PER_ACTOR))
        self._na = na
        self._usage = _UsageLog()
        SESSION.get(ResponseHooks).add(self._usage.append_record)

    async def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        plan = build_plan(batch, self._template, na=self._na)
        keys = [_prompt_key(p) for p in plan.prompts]
        answers = await self._answers(plan.prompts, keys)
        values: list[Any] = []
        errors: list[str | None] = []
        for r, job in enumerate(plan.row_job):
            value, error = answers[keys[job]] if job >= 0 else (None, plan.skipped.get(r))
            values.append(value)
            errors.append(error)
        records = list(self._usage)
        self._usage.clear()
        self._coordinator.add.remote(len(batch), sum(e is not None for e in errors), records)
        return assign(batch, self._columns(values, errors, batch.index))

    async def _answers(self, prompts: list[Any], keys: list[str]) -> dict[str, Any]:
        """Every key's (value, error): answered here when this worker claims it, else by
        the worker that did."""
        coordinator = self._coordinator
        by_key = dict(zip(keys, prompts, strict=True))
        mine, answers = await coordinator.claim.remote(list(by_key))
        while True:
            if mine:
                settled = await self._answer([by_key[k] for k in mine], mine)
                coordinator.settle.remote(settled)
                answers.update(settled)
            waiting = [k for k in by_key if k not in answers]
            if not waiting:
                return answers
            mine, found = await coordinator.wait.remote(waiting)
            answers.update(found)

    async def _answer(self, prompts: list[Any], keys: list[str]) -> dict[str, Any]:
        fields = self._fields
        result: BatchResult = await run_batch(
            self._client,
            prompts,
            materialize=materialize,
            convert=fields.to_dict if fields is not None else _text,
            concurrency=self._width,
            cache=self._cache,
            options=self._options,
        )
        return {k: (v, e) for k, v, e in zip(keys, result.values, result.errors, strict=True)}

    def _columns(
        self, values: list[Any], errors: list[str | None], index: pd.Index
    ) -> dict[Any, Any]:
        if self._fields is not None:
            added = self._fields.columns(values, index)
            added[self._fields.error_column] = object_series(errors, index)
            return added
        assert self._column is not None
        return {
            self._column: object_series(values, index),
            f"{self._column}_error": object_series(errors, index),
        }


class _UsageLog(list[dict[str, Any]]):
    """The usage records of a worker's answers (its session's response hook)."""

    def append_record(self, response: Response) -> None:
        usage = response.usage
        self.append(
            {
                "provider": response.provider, "model": response.model,
                "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                "cached_input_tokens": usage.cached_input_tokens,
                "cache_write_tokens": usage.cache_write_tokens,
                "cached": bool(response.cached), "cost": response.cost,
            }
        )  # fmt: skip


def _text(response: Response) -> str:
    return response.text


def _prompt_key(prompt: Any) -> str:
    """A name of the prompt that is the same on every worker."""
    text = prompt if isinstance(prompt, str) else repr(prompt)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
