"""df.llm / Series.llm against a real local OpenAI-compatible HTTP server (uvicorn, from
tests/support/server.py) with latency, 500s and per-key 429s with Retry-After: the whole
client stack (key pool, retries, the disk cache) over real sockets. Request counts are the
server's own."""

from __future__ import annotations

import _thread
import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

import llm_magics as lm
from llm_magics._runtime.retry import RetryPolicy
from tests.dataframe_support import reviews
from tests.support.server import FakeOpenAIServer

KEY = "sk-test-dataframe-server-0123"


def echo(prompt: str) -> str:
    return f"echo: {prompt}"


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(latency=0.02) as srv:
        yield srv


def connect(srv: FakeOpenAIServer, *, max_retries: int = 4, **options: Any) -> lm.Client:
    lm.register("fake", srv.base_url, api_key=KEY)
    retry = RetryPolicy(max_retries=max_retries, backoff_base=0.01, backoff_max=0.05)
    return lm.client("fake:fake-model", retry=retry, **options)


# --- order, index, dedup, cache --------------------------------------------------------------


def test_answers_keep_the_input_order_and_the_index(server: FakeOpenAIServer) -> None:
    frame = reviews(30)
    before = frame.copy()
    out = frame.llm.map("Rate {review} ({stars})", model=connect(server), progress=False)
    assert out.index.equals(frame.index)
    assert list(out.columns) == ["review", "stars", "llm", "llm_error"]
    expected = [echo(f"Rate {r} ({s})") for r, s in zip(frame.review, frame.stars, strict=True)]
    assert out["llm"].tolist() == expected
    assert out["llm_error"].isna().all()
    pd.testing.assert_frame_equal(frame, before)  # the input is left alone
    assert server.request_count == 30


def test_identical_prompts_are_sent_once_per_call(server: FakeOpenAIServer) -> None:
    frame = pd.DataFrame({"city": ["Paris", "Rome", "Paris", "Oslo", "Rome", "Paris"] * 5})
    out = frame.llm.map("Country of {city}?", model=connect(server), progress=False)
    assert server.request_count == 3
    assert out["llm"].tolist() == [echo(f"Country of {c}?") for c in frame.city]


def test_a_rerun_is_served_from_the_cache_and_sends_nothing(server: FakeOpenAIServer) -> None:
    frame = reviews(12)
    client = connect(server)
    first = frame.llm.map("Summarise {review}", model=client, progress=False)
    assert server.request_count == 12
    second = frame.llm.map("Summarise {review}", model=client, progress=False)
    assert server.request_count == 12
    pd.testing.assert_frame_equal(first, second)
    frame.llm.map("Summarise {review}", model=client, progress=False, cache=False)
    assert server.request_count == 24


def test_a_rerun_asks_the_cache_in_bulk_not_once_per_row(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = pd.DataFrame({"q": [f"question {i}" for i in range(600)]})
    client = connect(server)
    half = frame.iloc[::2]
    half.llm.map("{q}", model=client, progress=False)
    assert server.request_count == 300
    calls = {"get": 0, "get_many": 0}
    cache = client.cache
    assert cache is not None
    get, get_many = cache.get, cache.get_many  # type: ignore[attr-defined]

    def counting_get(key: str) -> Any:
        calls["get"] += 1
        return get(key)

    def counting_get_many(keys: Any) -> Any:
        calls["get_many"] += 1
        return get_many(keys)

    monkeypatch.setattr(cache, "get", counting_get)
    monkeypatch.setattr(cache, "get_many", counting_get_many)
    out = frame.llm.map("{q}", model=client, progress=False)
    assert out["llm"].tolist() == [echo(q) for q in frame.q]
    assert server.request_count == 600  # only the 300 rows not asked before
    assert calls == {"get": 0, "get_many": 3}  # 600 prompts, 256 per lookup


def test_plain_rows_are_looked_up_in_bulk_and_media_rows_one_by_one(
    server: FakeOpenAIServer, tmp_path: Any
) -> None:
    from tests.media_support import image_bytes

    photo = tmp_path / "p.png"
    photo.write_bytes(image_bytes(8, 8))
    frame = pd.DataFrame({"q": ["a", "b", "c"], "img": [None, str(photo), None]})
    client = connect(server)
    looked_up: list[Any] = []
    prepare_many = client.prepare_many

    def recording(prompts: Any, cache: Any, options: Any) -> Any:
        looked_up.extend(prompts)
        return prepare_many(prompts, cache, options)

    client.prepare_many = recording  # type: ignore[method-assign]
    out = frame.llm.map("{q}", model=client, images="img", progress=False, na="empty")
    assert looked_up == ["a", "c"]  # the image row went through achat, which loads the file
    assert out["llm_error"].isna().all() and out["llm"].notna().all()
    again = frame.llm.map("{q}", model=client, images="img", progress=False, na="empty")
    assert again["llm"].tolist() == out["llm"].tolist()
    assert server.request_count == 3


def test_an_interrupt_mid_run_loses_no_finished_row_and_a_rerun_sends_only_the_rest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    frame = reviews(60)
    with FakeOpenAIServer(latency=0.05) as srv:
        client = connect(srv)

        def interrupt_when_busy() -> None:
            deadline = time.monotonic() + 20
            while srv.request_count < 20 and time.monotonic() < deadline:
                time.sleep(0.002)
            _thread.interrupt_main()  # what a kernel interrupt does to the running cell

        threading.Thread(target=interrupt_when_busy, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            frame.llm.map("Rate {review}", model=client, concurrency=4, progress="text")
        assert "interrupted at" in capsys.readouterr().err
        sent_before = srv.request_count
        finished = lm.cache_stats().writes  # answers that had arrived, each already cached
        assert 0 < finished < 60 and sent_before < 60
        out = frame.llm.map("Rate {review}", model=client, concurrency=4, progress=False)
        assert srv.request_count - sent_before == 60 - finished  # only the missing rows
    assert out["llm"].tolist() == [echo(f"Rate {r}") for r in frame.review]
    assert out["llm_error"].isna().all()


# --- faults ----------------------------------------------------------------------------------


def test_a_server_failing_a_fifth_of_requests_still_answers_every_row() -> None:
    frame = reviews(100)
    with FakeOpenAIServer(latency=0.01, fail_rate=0.2, seed=5) as srv:
        out = frame.llm.map("Rate {review}", model=connect(srv), progress=False)
        statuses = srv.status_counts()
    assert out["llm_error"].isna().all(), out["llm_error"].dropna().head()
    assert out["llm"].tolist() == [echo(f"Rate {r}") for r in frame.review]
    assert statuses[500] >= 10 and statuses[200] == 100


SCALE = 30.0  # one virtual minute of the server's rate limit lasts two real seconds
RPM = 6


def test_429s_with_retry_after_are_honoured_and_every_row_is_answered() -> None:
    frame = reviews(3 * RPM)
    with FakeOpenAIServer(rpm=RPM, time_scale=SCALE, latency=0.01, violation_grace=0.5) as srv:
        client = connect(srv, max_retries=10)
        assert client.keys is not None
        client.keys._clock = srv.clock  # the key pool counts on the server's fast clock

        async def sleep(seconds: float) -> None:
            await asyncio.sleep(seconds / SCALE)

        client.keys._sleep = sleep
        out = frame.llm.map("Rate {review}", model=client, concurrency=8, progress=False)
        stats = srv.stats()
    assert out["llm_error"].isna().all()
    assert out["llm"].tolist() == [echo(f"Rate {r}") for r in frame.review]
    assert stats.rate_limited, "the server never said 429"
    assert stats.early == []  # nothing arrived on the key before its Retry-After had passed


def test_a_rate_limit_wait_shows_in_the_progress_line_with_its_reason() -> None:
    # "No map can hang or spin": while every worker waits out a 429, the bar says why.
    class Recorder:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def start(self, stats: Any) -> None:
            self.lines.append(stats.summary())

        def update(self, stats: Any) -> None:
            pass  # throttled away, as a real display would at this pace

        def refresh(self, stats: Any) -> None:
            self.lines.append(stats.summary())

        def close(self, stats: Any) -> None:
            self.lines.append(stats.summary())

    frame = reviews(3 * RPM)
    recorder = Recorder()
    with FakeOpenAIServer(rpm=RPM, time_scale=SCALE, latency=0.01, violation_grace=0.5) as srv:
        client = connect(srv, max_retries=10)
        assert client.keys is not None
        client.keys._clock = srv.clock

        async def sleep(seconds: float) -> None:
            await asyncio.sleep(seconds / SCALE)

        client.keys._sleep = sleep
        out = frame.llm.map("Rate {review}", model=client, concurrency=8, progress=recorder)
    assert out["llm_error"].isna().all()
    waits = [line for line in recorder.lines if "waiting" in line]
    assert waits, recorder.lines
    assert "cooling down after a 429" in waits[0] or "requests per minute" in waits[0]
    assert "waiting" not in recorder.lines[-1], "the finished line shows no stale wait"


def test_a_run_where_nothing_succeeds_stops_early_with_the_error() -> None:
    with FakeOpenAIServer(fail_rate=1.0) as srv:
        with pytest.raises(lm.ProviderError) as info:
            reviews(200).llm.map("Rate {review}", model=connect(srv, max_retries=0), progress=False)
        assert srv.request_count < 40
    assert info.value.status_code == 500


def test_a_rejected_key_fails_the_call_at_once() -> None:
    with FakeOpenAIServer(dead_keys=[KEY]) as srv:
        with pytest.raises(lm.AuthenticationError):
            reviews(50).llm.map("Rate {review}", model=connect(srv), progress=False)
        assert srv.request_count <= 16  # the first wave of workers, not fifty


# --- inputs ----------------------------------------------------------------------------------


def test_an_unknown_column_is_named_before_anything_is_sent(server: FakeOpenAIServer) -> None:
    with pytest.raises(lm.ConfigError) as info:
        reviews(3).llm.map("Rate {reveiw}", model=connect(server))
    assert "no column named 'reveiw'" in str(info.value)
    assert "review, stars" in str(info.value)
    assert server.request_count == 0


def test_an_empty_frame_gives_an_empty_result_without_a_request(
    server: FakeOpenAIServer,
) -> None:
    out = reviews(0).llm.map("Rate {review}", model=connect(server))
    assert len(out) == 0 and list(out.columns) == ["review", "stars", "llm", "llm_error"]
    assert server.request_count == 0


def test_rows_with_missing_input_are_skipped_and_say_so(server: FakeOpenAIServer) -> None:
    frame = pd.DataFrame({"review": ["good", None, float("nan"), "bad"], "n": [1, 2, 3, None]})
    out = frame.llm.map("{review} {n}", model=connect(server), progress=False)
    assert server.request_count == 1
    assert out["llm"].tolist() == [echo("good 1.0"), None, None, None]
    assert out["llm_error"].tolist() == [
        None,
        "skipped: missing input 'review'",
        "skipped: missing input 'review'",
        "skipped: missing input 'n'",
    ]


def test_braces_in_values_reach_the_model_verbatim(server: FakeOpenAIServer) -> None:
    values = ['{"a": 1}', "{review}", "{{x}}", "} {", "{0!r:>9}"]
    frame = pd.DataFrame({"code": values})
    out = frame.llm.map("Explain: {code}", model=connect(server), progress=False)
    assert out["llm"].tolist() == [echo(f"Explain: {v}") for v in values]


def test_series_map_fills_value_and_appends_it_to_a_bare_instruction(
    server: FakeOpenAIServer,
) -> None:
    s = pd.Series(["hello", "bye"], index=[5, 3], name="word")
    out = s.llm.map("Translate to French", model=connect(server), progress=False)
    assert out["llm"].tolist() == [
        echo("Translate to French\n\nhello"),
        echo("Translate to French\n\nbye"),
    ]
    assert list(out.columns) == ["word", "llm", "llm_error"] and list(out.index) == [5, 3]
    out = s.llm.map("{value} / {word}", model=connect(server), progress=False, out="x")
    assert out["x"].tolist() == [echo("hello / hello"), echo("bye / bye")]


def test_series_filter_returns_the_kept_part_of_the_series(server: FakeOpenAIServer) -> None:
    def answer(body: dict[str, Any]) -> str:
        return "Yes." if "pizza" in body["messages"][-1]["content"] else "No."

    with FakeOpenAIServer(answer=answer) as srv:
        s = pd.Series(["pizza", "cars", "pizza!"], index=[7, 8, 9])
        kept = s.llm.filter("Is this food? {value}", model=connect(srv), progress=False)
    assert kept.tolist() == ["pizza", "pizza!"] and list(kept.index) == [7, 9]


def test_progress_false_prints_nothing_and_text_progress_prints_one_line(
    server: FakeOpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    reviews(3).llm.map("{review}", model=connect(server), progress=False)
    assert capsys.readouterr().err == ""
    reviews(3).llm.map("{review}!", model=connect(server), progress="text")
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1
    assert "3/3 rows" in err and "0 errors" in err


def test_an_empty_row_is_an_error_in_its_own_row_and_the_others_are_answered(
    server: FakeOpenAIServer,
) -> None:
    frame = pd.DataFrame({"q": ["a", "b", "", "d", "e"]})
    out = frame.llm.map("{q}", model=connect(server), progress=False)
    assert out["llm"].tolist()[:2] == [echo("a"), echo("b")] and out["llm"][2] is None
    assert "the prompt is empty" in out["llm_error"][2]
    assert out["llm_error"].drop(index=2).isna().all()
    assert server.request_count == 4
