"""``mode="batch"``: a ``df.llm`` call as provider Batch API jobs (OpenAI, Anthropic, Groq).

    df = df.llm.classify("{review}", labels, model="openai:gpt-4o-mini", mode="batch")
    job = df.llm.map("Summarise: {review}", mode="batch", wait=False)   # returns at once
    job.status(); job.cancel(); df2 = job.result()                      # waits, then the frame

What it does (the engine is :mod:`llm_magics._batch.jobs`): rows already in the response cache
are never submitted, identical prompts are submitted once, the rest go out in as few jobs as
the provider's limits allow, billed at the batch price (half the online one; estimates and
``lm.usage()`` use it). While the jobs run, the progress display shows requests done,
failed and expired and the ETA. Answers fill the same response cache, under the keys online
calls use: an online rerun, or the same call after a kernel restart, sends nothing. Rows the
job failed (or that expired, or were cancelled) get the reason in ``<out>_error``; the same
call again sends just those.

The jobs are remembered next to the cache (:mod:`llm_magics._batch.job_store`): rerunning the
same call after an interrupt or a restart waits on the jobs already running instead of
starting new ones. ``wait=False`` returns a :class:`BatchHandle` as soon as the jobs exist.

Thread safety: called from the accessor's thread; the engine runs on the package's loop thread.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from .._batch.job_handle import JobHandle, JobsStatus
from .._batch.job_store import store_for
from .._batch.jobs import run_jobs
from .._batch.outcomes import BatchResult
from .._core.errors import ConfigError
from .._runtime import loop as _loop

__all__ = ["BatchHandle", "deferrable", "run_in_batch"]

F = TypeVar("F", bound=Callable[..., Any])

#: False while an accessor call made with ``wait=False`` runs.
_WAIT: ContextVar[bool] = ContextVar("llm_magics_batch_wait", default=True)


class _Submitted(Exception):
    """The jobs of a ``wait=False`` call exist: unwind the accessor call, hand back these."""

    def __init__(self, handle: JobHandle | None) -> None:
        super().__init__("submitted")
        self.handle = handle


class BatchHandle:
    """The provider batch jobs of one ``df.llm`` call made with ``wait=False``.

    ``status()`` asks the provider where they are; ``result()`` waits for them (the same
    call again, which resumes them) and returns what the call returns; ``cancel()`` stops
    them (answered requests keep their answers). The jobs are remembered on disk, so after a
    kernel restart the same call, run again, finds them too."""

    def __init__(self, jobs: JobHandle | None, result: Callable[[], Any]) -> None:
        self.jobs = jobs
        self._result = result

    def __repr__(self) -> str:
        if self.jobs is None:
            return "BatchHandle(every row was answered already; .result())"
        ids = ", ".join(self.jobs.job_ids)
        return f"BatchHandle({self.jobs.client.model_id}: {ids}; .status(), .result(), .cancel())"

    @property
    def job_ids(self) -> list[str]:
        return self.jobs.job_ids if self.jobs is not None else []

    def status(self) -> JobsStatus:
        """Where the jobs are now, as the provider says."""
        if self.jobs is None:
            return JobsStatus("", [])
        return self.jobs.status()

    def result(self) -> Any:
        """Wait for the jobs to end, then the call's result (a DataFrame, or the Series of a
        filter): rows answered, rows failed with their reason."""
        return self._result()

    def cancel(self) -> JobsStatus:
        """Ask the provider to stop the jobs; ``result()`` then gives what was answered."""
        if self.jobs is None:
            return JobsStatus("", [])
        return self.jobs.cancel()


def deferrable(method: F) -> F:
    """Let an accessor method take ``wait=False`` (with ``mode="batch"``): it then returns a
    :class:`BatchHandle` once the jobs exist instead of waiting for them."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, wait: bool = True, **kwargs: Any) -> Any:
        if not isinstance(wait, bool):
            raise ConfigError(f"wait= takes True or False; got {wait!r}")
        if wait:
            return method(self, *args, **kwargs)
        if kwargs.get("mode", "online") != "batch":
            raise ConfigError("wait=False is for mode='batch' (a provider batch job)")
        token = _WAIT.set(False)
        try:
            method(self, *args, **kwargs)
        except _Submitted as submitted:
            return BatchHandle(submitted.handle, lambda: method(self, *args, **kwargs))
        finally:
            _WAIT.reset(token)
        return BatchHandle(None, lambda: method(self, *args, **kwargs))

    return call  # type: ignore[return-value]


def run_in_batch(client: Any, prompts: list[Any], **engine: Any) -> BatchResult:
    """Run the prompts as batch jobs (``engine``: the arguments of
    :func:`~llm_magics._batch.jobs.run_jobs`); in a ``wait=False`` call, unwind with the jobs'
    handle once they exist."""
    wait = _WAIT.get()
    outcome = _loop.run(
        run_jobs(client, prompts, store=store_for(client.cache), wait=wait, **engine)
    )
    if isinstance(outcome, JobHandle):
        raise _Submitted(outcome)
    if not wait:
        raise _Submitted(None)
    return outcome
