"""The run's counters and its one-line summary: tokens, cost, what the response cache and the
provider's prompt cache saved, and a batch job's progress while it runs."""

from __future__ import annotations

import pytest

from llm_magics._batch.outcomes import Outcomes
from llm_magics._batch.stats import BatchStats, JobProgress
from llm_magics._client.pricing import profile_for
from llm_magics._core.types import Response, Usage


def answer(usage: Usage, *, cached: bool = False, cost: float | None = None) -> Response:
    return Response("ok", "gpt-4o-mini", "openai", usage=usage, cached=cached, cost=cost)


def test_the_summary_shows_both_caches_savings() -> None:
    stats = BatchStats(total=3)
    outcomes = Outcomes(3, [1, 1, 1], stats, "column")
    outcomes.account(answer(Usage(2_000, 10, cached_input_tokens=1_536)))
    outcomes.account(answer(Usage(2_000, 10)))
    outcomes.account(answer(Usage(2_000, 10), cached=True, cost=0.25))
    profile = profile_for("openai", "gpt-4o-mini")
    assert profile is not None and profile.input and profile.cached_input
    saved = 1_536 * (profile.input - profile.cached_input) / 1e6
    assert stats.cached_input_tokens == 1_536
    assert stats.prompt_cache_saved == pytest.approx(saved)
    assert (stats.cache_hits, stats.saved, stats.requests) == (1, 0.25, 2)
    line = stats.summary()
    assert "1 cached (saved $0.25)" in line
    assert "prompt cache: 1,536 tokens, saved $0.000" in line


def test_a_running_batch_job_shows_requests_done_failed_expired_and_an_eta() -> None:
    stats = BatchStats(total=100, done=10)
    stats.job = JobProgress(requests=80, succeeded=30, failed=2, expired=1, jobs=1)
    stats.job.status = "in_progress"
    line = stats.summary()
    assert "batch job in_progress: 33/80 requests done · 2 failed · 1 expired · ETA" in line
    assert "rows/s" not in line  # a job's pace is not the rows' pace
    stats.status = "done"
    assert "batch job" not in stats.summary()


def test_a_job_eta_is_unknown_before_any_request_finished() -> None:
    job = JobProgress(requests=10)
    assert job.eta is None and "ETA up to 24h" in job.summary()
