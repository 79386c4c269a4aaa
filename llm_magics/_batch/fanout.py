"""The batch engine behind ``df.llm``: many prompts, one client, bounded concurrency.

What it guarantees, so a notebook user can trust a 10,000-row run:

* **Identical prompts are sent once.** Callers hand over the *unique* prompts; rows that share
  one get the same answer.
* **Bounded concurrency**: ``concurrency`` workers pull the next prompt; nothing else is in
  flight. Key rotation and rate limits are the client's :class:`~llm_magics._client.keys.KeyPool`'s
  business (a worker simply waits in ``acquire``), retries with backoff and Retry-After are the
  client's :class:`~llm_magics._runtime.retry.RetryPolicy`'s.
* **The cache is asked in bulk**: plain-text prompts are built and looked up
  ``LOOKAHEAD`` at a time, one cache query each (:class:`~llm_magics._batch.lookahead.Lookahead`),
  instead of once per row.
* **Every answer is cached the moment it arrives** (``Client.achat`` writes each response to
  the cache before returning it), so an interrupt loses no finished row and a rerun sends only
  what is missing.
* **Nothing fails silently.** A prompt that still fails after the client's retries gets its
  error text; failures that were worth retrying get one more try in a final sweep once the
  rest is done (a burst of 500s or a short outage should not cost rows). With
  ``errors="raise"`` the first failure cancels the rest and is raised. Failures that would
  repeat for every row (a missing or rejected key, an unknown model, an unsupported option:
  :class:`~llm_magics.ConfigError`, :class:`~llm_magics.AuthenticationError`) are raised at
  once, and so is the error when the first ``FAIL_FAST`` prompts all failed and none
  succeeded (a server that is down should not be retried 10,000 times).
* **Spending limits**: every request meets the kernel's budget (``lm.budget``) and the run's
  ``max_cost`` (:func:`~llm_magics._client.budget.spending_cap`) before it is sent; one that
  would pass either is not sent, and its rows get the error saying so (answered rows are
  cached, so raising the limit and rerunning finishes the rest).
* **Memory**: per prompt only the converted value and the error text are kept; Responses are
  dropped as soon as their value, tokens and cost are counted.

Cancellation (Ctrl-C / kernel interrupt through :func:`llm_magics._runtime.loop.run`) cancels the
workers, waits for them to unwind, reports where the run stopped, and re-raises.

This module holds the orchestration (the phases of a run and the pool of workers); the parts
live beside it: :mod:`.stats` (the live counters), :mod:`.progress` (the displays),
:mod:`.lookahead` (the bulk cache lookup), :mod:`.answer` (one prompt, sent and converted) and
:mod:`.outcomes` (the per-prompt results and the rules for giving up).

Thread safety: one :func:`run_batch` call runs on one event loop; its stats are written from
that loop only, and progress displays read them from the loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .._client.budget import spending_cap
from .._client.client import Client
from .._client.pipeline import CacheMode
from .._core.types import Response
from .._runtime.waits import listening
from .answer import PromptAnswerer
from .outcomes import BatchResult, ErrorMode, Outcomes
from .progress import NullProgress, Progress, TextProgress, WaitNotices
from .stats import BatchStats

__all__ = ["BatchResult", "BatchStats", "Progress", "TextProgress", "run_batch"]

DEFAULT_CONCURRENCY = 16


async def run_batch(
    client: Client,
    prompts: Sequence[Any],
    *,
    rows: Sequence[int] | None = None,
    materialize: Callable[[Any], Any] | None = None,
    convert: Callable[[Response], Any] = lambda r: r.text,
    recover: Callable[[Response], Any] | None = None,
    concurrency: int | None = None,
    cache: CacheMode = True,
    errors: ErrorMode = "column",
    progress: Progress | None = None,
    stats: BatchStats | None = None,
    options: dict[str, Any] | None = None,
    max_cost: float | None = None,
) -> BatchResult:
    """Send every prompt of ``prompts`` with ``client.achat`` and convert the answers.

    ``rows[i]`` is how many DataFrame rows share prompt ``i`` (for progress; default 1).
    ``materialize`` turns a stored prompt into what ``achat`` takes (e.g. loads an image
    file) right before sending, so media are in memory only while in flight. ``convert``
    maps a Response to the stored value; if it raises ValueError the prompt counts as
    failed with that message. ``recover`` handles an :class:`OutputParseError`'s response
    (e.g. a label found in a non-JSON answer) instead of failing the prompt. ``max_cost``:
    the most this run may spend (USD), on top of the kernel's budget.
    """
    n = len(prompts)
    weights = list(rows) if rows is not None else [1] * n
    stats = stats or BatchStats(total=sum(weights))
    stats.unique = n
    stats.cached = cache is not False and client.cache is not None
    progress = progress or NullProgress()
    outcomes = Outcomes(n, weights, stats, errors)
    answerer = PromptAnswerer(
        client,
        prompts,
        outcomes,
        materialize=materialize,
        convert=convert,
        recover=recover,
        cache=cache,
        options=dict(options or {}),
    )
    width = concurrency or DEFAULT_CONCURRENCY
    progress.start(stats)
    try:
        with spending_cap(max_cost):
            await _answer_all(answerer, outcomes, n, width, progress, stats)
        stats.status = "done"
    except asyncio.CancelledError:
        stats.status = "interrupted"
        raise
    except BaseException:
        stats.status = "failed"
        raise
    finally:
        stats.finished = time.monotonic()
        # A broken display must never hide the run's own outcome.
        with contextlib.suppress(Exception):
            progress.close(stats)
    return outcomes.result()


async def _answer_all(
    answerer: PromptAnswerer,
    outcomes: Outcomes,
    n: int,
    concurrency: int,
    progress: Progress,
    stats: BatchStats,
) -> None:
    """Every prompt once, then one more try for those whose failure was worth retrying
    (unless nothing succeeded: then the provider is down, not flaky)."""
    with listening(WaitNotices(stats, progress).heard):  # the workers inherit it
        if n:
            await _drain(answerer, range(n), False, concurrency, progress, stats)
        if outcomes.retry_later and outcomes.successes:
            await _drain(answerer, list(outcomes.retry_later), True, concurrency, progress, stats)


async def _drain(
    answerer: PromptAnswerer,
    indices: Sequence[int],
    sweep: bool,
    concurrency: int,
    progress: Progress,
    stats: BatchStats,
) -> None:
    """Answer every prompt of ``indices`` with at most ``concurrency`` workers; the first
    error stops the others and is raised."""
    shared = iter(indices)
    width = max(1, min(concurrency, len(indices)))
    tasks = [
        asyncio.ensure_future(_work(shared, answerer, sweep, progress, stats)) for _ in range(width)
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            exc = task.exception()
            if exc is not None:
                raise exc
    finally:
        # On an error or a cancellation, stop the others and let them unwind (closing
        # connections) before the caller goes on.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _work(
    shared: Iterator[int],
    answerer: PromptAnswerer,
    sweep: bool,
    progress: Progress,
    stats: BatchStats,
) -> None:
    for i in shared:  # one shared iterator: each prompt is taken by exactly one worker
        await answerer.answer(i, sweep)
        progress.update(stats)
