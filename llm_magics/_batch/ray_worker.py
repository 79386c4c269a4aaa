"""What runs inside a Ray actor of a job: the client rebuilt from its spec, with the job's
shared key pool (:class:`WorkerClient`), and the callable class that Ray Data's
``map_batches`` runs over the unique prompts of a ``df.llm`` call (:class:`PromptWorker`).

A PromptWorker answers its batch with the package's own engine
(:func:`~llm_magics._batch.fanout.run_batch`: cache lookahead, retries, Retry-After,
the final sweep), and hands each answer back *unfinished*, as the cache's JSON row: the
driver finishes it (schema parsing into the caller's pydantic model, the caller's
``convert``/``recover``, usage and budget), so notebook-defined functions and models never
leave the driver and the values equal the local engine's.

Thread safety: Ray runs a batch's coroutine on the actor's event loop; up to four batches
interleave there, each with its own bounded set of requests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .._cache.codec import encode_response
from .._client.client import Client
from .._client.pipeline import CacheMode
from .._core.types import Response
from .fanout import run_batch
from .ray_keys import SharedKeyPool
from .ray_spec import ClientSpec

__all__ = ["BATCHES_PER_ACTOR", "PromptWorker", "WorkerClient"]

#: How many batches Ray Data runs at once in one async actor (its default for async UDFs);
#: an actor's ``concurrency`` is shared among them.
BATCHES_PER_ACTOR = 4


class WorkerClient:
    """The job's client on this worker: the spec's, with its keys rationed by the job's
    coordinator."""

    def __init__(self, spec: ClientSpec, coordinator: Any) -> None:
        local = spec.key_pool()
        keys = SharedKeyPool(local, coordinator) if local is not None else None
        self.client: Client = spec.build(keys)
        self.coordinator = coordinator


class PromptWorker:
    """``map_batches`` callable class: a batch of ``{"job": int, "prompt": ...}`` rows in,
    ``{"job", "answer", "cached", "unparsed", "error"}`` out (``answer``: the cache row of
    the response, JSON text; ``cached``: it came from the cache)."""

    def __init__(
        self,
        spec: ClientSpec,
        coordinator: Any,
        *,
        options: dict[str, Any],
        cache: CacheMode,
        concurrency: int,
        recover: bool,
        materialize: Callable[[Any], Any] | None = None,
    ) -> None:
        self._client = WorkerClient(spec, coordinator).client
        self._options = options
        self._cache = cache
        self._width = max(1, math.ceil(concurrency / BATCHES_PER_ACTOR))
        self._recover = recover
        self._materialize = materialize

    async def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        jobs = [int(j) for j in batch["job"]]
        prompts = list(batch["prompt"])
        result = await run_batch(
            self._client,
            prompts,
            materialize=self._materialize,
            convert=_as_answer,
            recover=_as_unparsed if self._recover else None,
            concurrency=self._width,
            cache=self._cache,
            errors="column",
            options=self._options,
        )
        answers: list[str | None] = []
        cached: list[bool] = []
        unparsed: list[bool] = []
        for value in result.values:
            answers.append(value[1] if value is not None else None)
            cached.append(value is not None and value[2])
            unparsed.append(value is not None and value[0] == "unparsed")
        return {
            "job": jobs, "answer": answers, "cached": cached, "unparsed": unparsed,
            "error": result.errors,
        }  # fmt: skip


def _as_answer(response: Response) -> tuple[str, str, bool]:
    return ("answer", encode_response(response).decode("utf-8", "surrogatepass"), response.cached)


def _as_unparsed(response: Response) -> tuple[str, str, bool]:
    return ("unparsed", encode_response(response).decode("utf-8", "surrogatepass"), response.cached)
