"""df.llm in mode="batch", against a fake OpenAI / Anthropic / Groq account that validates every
upload, job request and result line against the provider's spec and completes jobs on demand
(no test waits in real time): one job for the unique uncached rows, answers in the same
response cache as online calls (so an online rerun, or the call after a restart, sends
nothing), job handles persisted and resumed, wait=False handles, partial failures, expiry and
cancellation in <out>_error, batch prices in usage and estimates, and the job's status on the
progress display while it runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

import llm_magics as lm
from llm_magics._batch.job_store import store_for
from llm_magics._batch.job_wire import JobPolling
from llm_magics._batch.stats import BatchStats
from llm_magics._core.session import SESSION
from tests.support.batch_server import FakeBatchServer

KEY = "sk-batch-test-SENTINEL-0000111122223333"
LABELS = ["positive", "negative"]


def reviews(n: int, *, duplicates: int = 0) -> pd.DataFrame:
    texts = [f"review number {i}" for i in range(n - duplicates)]
    texts += texts[:duplicates]
    return pd.DataFrame({"review": texts})


def label_of(text: str) -> str:
    number = int(text.rsplit(" ", 1)[-1])
    return json.dumps({"label": LABELS[number % 2]})


class Polls:
    """The batch engine's sleep: records each pause and lets the fake server finish
    ``per_pause`` requests of every running job (``None``: all of them, ``0``: none)."""

    def __init__(self, server: FakeBatchServer, per_pause: int | None = None) -> None:
        self.server = server
        self.per_pause = per_pause
        self.pauses: list[float] = []
        SESSION.put(JobPolling, JobPolling(sleep=self.sleep))

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        if self.per_pause != 0:
            self.server.complete(self.per_pause)


class Lines:
    """A progress display that keeps every line it was shown."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def start(self, stats: BatchStats) -> None:
        self.lines.append(stats.summary())

    def update(self, stats: BatchStats) -> None:
        self.lines.append(stats.summary())

    def close(self, stats: BatchStats) -> None:
        self.lines.append(f"{stats.summary()} · {stats.closing_note()}")


@pytest.fixture
def openai() -> Iterator[FakeBatchServer]:
    server = FakeBatchServer("openai", answer=label_of)
    Polls(server)
    yield server


def client(server: FakeBatchServer, model: str = "openai:gpt-4o-mini") -> lm.Client:
    return lm.client(model, api_key=KEY, transport=server.transport())


def restart() -> None:
    """What a kernel restart forgets: every part of the session (the disk stays)."""
    SESSION.reset()


def classify(server: FakeBatchServer, frame: pd.DataFrame, **options: Any) -> Any:
    options.setdefault("progress", False)
    return frame.llm.classify("{review}", LABELS, model=client(server), mode="batch", **options)


def test_one_job_answers_the_unique_rows_and_fills_the_cache_online_calls_use(
    openai: FakeBatchServer,
) -> None:
    frame = reviews(10, duplicates=2)
    out = classify(openai, frame)
    expected = [json.loads(label_of(r))["label"] for r in frame.review]
    assert out["label"].tolist() == expected and out["label_error"].isna().all()
    (job,) = openai.jobs.values()
    assert len(job.requests) == 8  # dedup: 8 unique prompts, one request each
    assert openai.chat_requests == 0
    # An online rerun of the same call finds every answer under the online keys.
    again = frame.llm.classify("{review}", LABELS, model=client(openai), progress=False)
    assert again["label"].tolist() == expected
    assert openai.chat_requests == 0 and len(openai.jobs) == 1


def test_after_a_restart_the_same_call_sends_nothing(openai: FakeBatchServer) -> None:
    classify(openai, reviews(6))
    restart()
    Polls(openai)
    out = classify(openai, reviews(6))
    assert out["label_error"].isna().all()
    assert len(openai.jobs) == 1 and openai.chat_requests == 0


def test_rows_already_cached_are_never_submitted(openai: FakeBatchServer) -> None:
    reviews(4).llm.classify("{review}", LABELS, model=client(openai), progress=False)
    assert openai.chat_requests == 4
    out = classify(openai, reviews(10))
    (job,) = openai.jobs.values()
    assert len(job.requests) == 6 and out["label_error"].isna().all()


def test_usage_is_billed_at_the_batch_price(openai: FakeBatchServer) -> None:
    frame = reviews(8)
    online = frame.llm.estimate("{review}", model=client(openai))
    batch = frame.llm.estimate("{review}", model=client(openai), mode="batch")
    assert online.usd is not None and batch.usd == pytest.approx(online.usd / 2)
    frame.llm.map("{review}", model=client(openai), mode="batch", progress=False)
    assert openai.bill.batch_requests == 8
    assert lm.usage().session.cost == pytest.approx(openai.bill.usd)  # what the server billed


def test_wait_false_returns_the_handle_and_a_restart_resumes_the_same_job() -> None:
    server = FakeBatchServer("openai", answer=label_of)
    polls = Polls(server, per_pause=0)  # the job does not move until the test says so
    display = Lines()
    handle = classify(server, reviews(6), wait=False, progress=display)
    assert polls.pauses == []  # returned at once, without waiting
    assert "6 requests run in a batch job at the provider" in display.lines[-1]
    (job_id,) = handle.job_ids
    assert "in_progress" in str(handle.status()) and "0/6 requests done" in str(handle.status())
    records = store_for(client(server).cache).records()
    assert [r.job_ids for r in records] == [[job_id]]
    restart()
    Polls(server)  # from now on each pause finishes the job
    out = classify(server, reviews(6))  # the same call after a restart: it waits, no new job
    assert list(server.jobs) == [job_id] and out["label_error"].isna().all()
    assert store_for(client(server).cache).records() == []  # done: the record is gone
    assert handle.result()["label"].tolist() == out["label"].tolist()


def test_the_persisted_handle_never_holds_the_key(openai: FakeBatchServer) -> None:
    Polls(openai, per_pause=0)
    classify(openai, reviews(3), wait=False)
    store = store_for(client(openai).cache)
    (path,) = store.directory.glob("*.json")
    text = path.read_text()
    assert KEY not in text and KEY[-4:] not in text and "batch_" in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_rows_the_job_failed_get_their_error_and_a_rerun_sends_only_those() -> None:
    server = FakeBatchServer("openai", answer=label_of, fail_when="number 3")
    Polls(server)
    out = classify(server, reviews(6))
    bad = out.review == "review number 3"
    assert out.loc[~bad, "label_error"].isna().all()
    (error,) = out.loc[bad, "label_error"]
    assert error.startswith("ProviderError: the batch job could not answer: HTTP 400:")
    assert "this prompt fails" in error
    server.fail_when = None
    again = classify(server, reviews(6))
    assert again["label_error"].isna().all()
    assert [len(job.requests) for job in server.jobs.values()] == [6, 1]


def test_expired_rows_say_so_and_are_sent_again_by_the_next_call() -> None:
    server = FakeBatchServer("openai", answer=label_of)

    async def two_then_the_window_ends(seconds: float) -> None:
        server.complete(2)
        server.expire()

    SESSION.put(JobPolling, JobPolling(sleep=two_then_the_window_ends))
    out = classify(server, reviews(5))
    expired = out["label_error"].notna()
    assert expired.sum() == 3 and out.loc[~expired, "label"].notna().all()
    assert out.loc[expired, "label_error"].str.contains("window ran out").all()
    Polls(server)
    again = classify(server, reviews(5))
    assert again["label_error"].isna().all()
    assert [len(job.requests) for job in server.jobs.values()] == [5, 3]


def test_an_interrupt_while_waiting_leaves_the_job_and_the_same_call_resumes_it() -> None:
    import _thread

    server = FakeBatchServer("openai", answer=label_of)

    async def interrupted(seconds: float) -> None:
        _thread.interrupt_main()  # what a kernel interrupt does to the running cell
        await asyncio.sleep(5)

    SESSION.put(JobPolling, JobPolling(sleep=interrupted))
    display = Lines()
    with pytest.raises(KeyboardInterrupt):
        classify(server, reviews(4), progress=display)
    assert "the batch job keeps running at the provider" in display.lines[-1]
    assert len(store_for(client(server).cache).records()) == 1
    Polls(server)
    out = classify(server, reviews(4))
    assert out["label_error"].isna().all() and len(server.jobs) == 1


def test_cancel_stops_the_job_and_result_keeps_what_was_answered() -> None:
    server = FakeBatchServer("openai", answer=label_of)
    Polls(server, per_pause=0)
    handle = classify(server, reviews(4), wait=False)
    server.complete(1)  # one request answered before the cancel
    assert "cancelling" in str(handle.cancel())
    Polls(server)  # the next look finds the job cancelled
    out = handle.result()
    assert out["label_error"].isna().sum() == 1
    assert out["label_error"].dropna().str.contains("cancelled").all()


def test_the_progress_display_shows_the_job_while_it_runs() -> None:
    server = FakeBatchServer("openai", answer=label_of)
    Polls(server, per_pause=2)
    display = Lines()
    classify(server, reviews(6), progress=display)
    running = [line for line in display.lines if "batch job" in line]
    assert any("batch job in_progress: 0/6 requests done" in line for line in running)
    assert any("2/6 requests done" in line for line in running)
    assert "6/6 rows" in display.lines[-1] and "batch job" not in display.lines[-1]


def test_a_budget_between_the_batch_and_the_online_estimate_lets_only_batch_run(
    openai: FakeBatchServer,
) -> None:
    frame = reviews(6)
    batch = frame.llm.estimate("{review}", model=client(openai), mode="batch")
    assert batch.usd is not None
    lm.budget(usd=batch.usd * 1.5)
    with pytest.raises(lm.BudgetExceededError, match="nothing was sent"):
        frame.llm.map("{review}", model=client(openai), progress=False)
    out = frame.llm.map("{review}", model=client(openai), mode="batch", progress=False)
    assert out["llm_error"].isna().all()


def test_anthropic_batches_answer_with_the_schema_tool_and_cache_their_prefix() -> None:
    server = FakeBatchServer("anthropic", answer=label_of)
    Polls(server)
    rules = "Judge the review by its tone, not its topic. " * 150  # ~1,700 tokens shared
    c = client(server, "anthropic:claude-sonnet-4-5")
    out = reviews(5).llm.classify(
        "{review}", LABELS, model=c, system=rules, mode="batch", progress=False
    )
    assert out["label"].tolist() == ["positive", "negative", "positive", "negative", "positive"]
    (job,) = server.jobs.values()
    for _, params in job.requests:
        # One breakpoint at the end of what the rows share: tools, the rules, "review number ".
        shared = params["messages"][0]["content"][0]
        assert shared == {
            "type": "text", "text": "review number ", "cache_control": {"type": "ephemeral"}
        }  # fmt: skip
        assert params["system"].startswith(rules) and params["tool_choice"]["type"] == "tool"
    assert server.bill.written_tokens > 0 and server.bill.cached_tokens > 0
    assert lm.usage().session.cost == pytest.approx(server.bill.usd)
    again = reviews(5).llm.classify("{review}", LABELS, model=c, system=rules, progress=False)
    assert again["label"].tolist() == out["label"].tolist() and server.chat_requests == 0


def test_groq_batches_go_through_its_openai_shaped_api() -> None:
    server = FakeBatchServer("openai", answer=lambda text: "fine", spec="groq")
    Polls(server)
    c = lm.client("groq:llama-3.3-70b-versatile", api_key=KEY, transport=server.transport())
    out = reviews(3).llm.map("{review}", model=c, mode="batch", progress=False)
    assert out["llm"].tolist() == ["fine"] * 3
    assert ("POST", "/files") in server.calls and ("POST", "/batches") in server.calls


def test_gemini_batches_carry_their_requests_inline_and_bill_implicit_caching() -> None:
    server = FakeBatchServer("gemini", answer=label_of, fail_when="number 2")
    Polls(server)
    rules = "Judge the review by its tone, not its topic. " * 150
    c = client(server, "gemini:gemini-2.5-flash")
    out = reviews(4).llm.classify(
        "{review}", LABELS, model=c, system=rules, mode="batch", progress=False
    )
    assert (
        out["label"].tolist()[:2] == ["positive", "negative"] and out["label"].iloc[3] == "negative"
    )
    assert "this prompt fails" in out["label_error"].iloc[2]
    (job,) = server.jobs.values()
    assert job.id.startswith("batches/") and len(job.requests) == 4
    assert all(
        params["systemInstruction"]["parts"][0]["text"].startswith(rules)
        for _, params in job.requests
    )
    assert server.bill.cached_tokens > 0 and server.bill.batch_requests == 3
    assert lm.usage().session.cost == pytest.approx(server.bill.usd)
    assert lm.usage().session.cached_input_tokens == server.bill.cached_tokens


def test_a_provider_without_a_batch_api_says_so_before_sending() -> None:
    with pytest.raises(lm.ConfigError, match=r"Batch API jobs.*mode='online'"):
        reviews(3).llm.map("{review}", model="local", mode="batch", progress=False)


def test_wait_false_needs_batch_mode() -> None:
    with pytest.raises(lm.ConfigError, match="wait=False is for mode='batch'"):
        reviews(3).llm.map("{review}", model="local", wait=False)


def test_the_fake_server_rejects_a_batch_line_the_spec_does_not_allow(
    openai: FakeBatchServer,
) -> None:
    from tests.support.specs import SpecViolation

    with pytest.raises(SpecViolation):  # the validator can fail: a line without messages
        openai.check_component("CreateChatCompletionRequest", {"model": "gpt-4o-mini"})


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"mode": "offline"}, "mode= takes 'online' or 'batch'"),
        ({"mode": "batch", "wait": "no"}, "wait= takes True or False"),
        ({"max_cost": -1}, r"max_cost= takes an amount in US dollars \(a number >= 0\); got -1"),
    ],
)
def test_a_wrong_mode_wait_or_max_cost_is_named_before_anything_is_sent(
    openai: FakeBatchServer, options: dict[str, Any], says: str
) -> None:
    with pytest.raises(lm.ConfigError, match=says):
        reviews(3).llm.map("{review}", model=client(openai), progress=False, **options)
    assert openai.chat_requests == 0 and not openai.jobs
