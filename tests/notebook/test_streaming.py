"""Streaming into the cell: every display call comes from the main thread into the cell's one
display handle, updates are throttled but never stale, Ctrl-C stops at once and keeps what
arrived, and a stream cut mid-way keeps its partial answer."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from typing import Any

import pytest
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.utils.capture import capture_output

import llm_magics as lm
from tests.magics_helpers import FakeOpenAI, fake, ip, magics_of, outputs

__all__ = ["fake", "ip"]  # fixtures


class RecordingPublisher(CapturingDisplayPublisher):
    """Captures display messages with the time and thread each was published from."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[float, str, dict[str, Any]]] = []

    def publish(
        self,
        data: Any,
        metadata: Any = None,
        source: Any = None,
        *,
        transient: Any = None,
        update: bool = False,
    ) -> None:
        super().publish(data, metadata, source, transient=transient, update=update)
        self.events.append((time.perf_counter(), threading.current_thread().name, dict(data)))


@pytest.fixture
def publisher(ip: Any) -> Any:
    original = ip.display_pub
    recorder = RecordingPublisher()
    ip.display_pub = recorder
    try:
        yield recorder
    finally:
        ip.display_pub = original


def answer_texts(pub: RecordingPublisher) -> list[str]:
    return [
        d["text/plain"]
        for _, _, d in pub.events
        if "text/html" not in d or "llm-magics-usage" not in d["text/html"]
    ]


def test_every_display_call_comes_from_the_main_thread(
    ip: Any, fake: FakeOpenAI, publisher: RecordingPublisher
) -> None:
    fake.delay = 0.01
    ip.run_cell_magic("llm", "", "one two three four five six")
    threads = {name for _, name, _ in publisher.events}
    assert threads == {threading.main_thread().name}


def test_the_text_grows_update_by_update_to_the_full_answer(
    ip: Any, fake: FakeOpenAI, publisher: RecordingPublisher
) -> None:
    fake.delay = 0.08
    ip.run_cell_magic("llm", "", "alpha beta gamma delta")
    growing = answer_texts(publisher)
    assert len(growing) >= 4, "with 80 ms between deltas each one is shown"
    assert all(b.startswith(a) for a, b in itertools.pairwise(growing))
    assert growing[-1] == "echo: alpha beta gamma delta" == ip.user_ns["_llm"].text


def test_updates_are_throttled_when_deltas_come_fast(
    ip: Any, fake: FakeOpenAI, publisher: RecordingPublisher
) -> None:
    words = " ".join(f"w{i}" for i in range(400))
    fake.reply = words
    fake.delay = 0.0005
    ip.run_cell_magic("llm", "", "long")
    texts = answer_texts(publisher)
    assert texts[-1] == words, "the final update always shows everything"
    assert fake.sent == 400
    assert len(texts) < 100, f"{len(texts)} updates for 400 deltas"
    times = [t for t, _, d in publisher.events][1:-1]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    interval = magics_of(ip).update_interval
    assert all(g >= interval * 0.8 for g in gaps[:-1]), gaps


def test_a_delta_held_back_by_the_throttle_is_shown_while_the_stream_pauses(
    ip: Any, fake: FakeOpenAI, publisher: RecordingPublisher
) -> None:
    """Two deltas arrive together, then the server goes quiet for 0.6 s: the second must be on
    screen within the update interval, not only when the next delta comes."""
    shown_at: dict[str, float] = {}
    sent_at: dict[int, float] = {}
    fake.on_chunk = lambda n: sent_at.setdefault(n, time.perf_counter())
    fake.reply = "first second third"
    fake.delays = [0.0, 0.6]
    ip.run_cell_magic("llm", "", "x")
    for t, _, d in publisher.events:
        shown_at.setdefault(d["text/plain"], t)
    full_two = next(
        text for text in shown_at if text.startswith("first second") and "third" not in text
    )
    interval = magics_of(ip).update_interval
    assert shown_at[full_two] - sent_at[2] < interval + 0.15
    assert shown_at[full_two] < sent_at[3], "shown during the pause, before the third word was sent"


def test_ctrl_c_stops_the_stream_promptly_and_keeps_what_arrived(
    ip: Any, fake: FakeOpenAI, publisher: RecordingPublisher
) -> None:
    fake.reply = " ".join(f"word{i}" for i in range(40))
    fake.delay = 0.1
    interrupted_at: list[float] = []

    def on_chunk(n: int) -> None:
        if n == 3:
            interrupted_at.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C / kernel interrupt

    fake.on_chunk = on_chunk
    with pytest.raises(KeyboardInterrupt) as info:
        ip.run_cell_magic("llm", "-o partial", "count")
    stopped = time.perf_counter()
    assert stopped - interrupted_at[0] < 0.5, "stops at once, not after the remaining 3.7 s"
    kept = ip.user_ns["_llm"]
    assert kept is ip.user_ns["partial"]
    assert kept.finish_reason == "interrupted"
    assert kept.text.startswith("word0 word1 word2") and "word39" not in kept.text
    assert answer_texts(publisher)[-1] == f"{kept.text}\n\n*[interrupted]*"
    rendered = info.value._render_traceback_()  # type: ignore[attr-defined]
    assert len(rendered) == 1 and "KeyboardInterrupt" in rendered[0] and "_llm" in rendered[0]
    sent = fake.sent
    time.sleep(0.35)
    assert fake.sent == sent and not fake.finished, "nothing more is read after the interrupt"


def test_an_interrupt_raised_while_showing_a_delta_also_keeps_the_text(
    ip: Any, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.delay = 0.05
    from llm_magics.notebook import display as _display

    calls = {"n": 0}
    original = _display.AnswerView.append

    def append(self: Any, delta: str) -> None:
        original(self, delta)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(_display.AnswerView, "append", append)
    with capture_output(), pytest.raises(KeyboardInterrupt):
        ip.run_cell_magic("llm", "-f text", "a b c d e f")
    assert ip.user_ns["_llm"].text == "echo: a "
    assert ip.user_ns["_llm"].finish_reason == "interrupted"


def test_a_stream_cut_mid_way_keeps_the_partial_answer_and_says_so(
    ip: Any, fake: FakeOpenAI
) -> None:
    fake.cut_after = 2
    with capture_output() as captured, pytest.raises(lm.StreamInterruptedError) as info:
        ip.run_cell_magic("llm", "", "one two three four")
    assert ip.user_ns["_llm"].text == "echo: one "
    assert ip.user_ns["_llm"].finish_reason == "error"
    rendered = info.value._render_traceback_()  # type: ignore[attr-defined]
    assert len(rendered) == 1 and "partial answer is in _llm" in rendered[0]
    assert outputs(captured)[-1]["data"]["text/markdown"].endswith("*[error]*")


def test_an_interrupted_run_all_stops_at_the_interrupted_cell(ip: Any, fake: FakeOpenAI) -> None:
    """The cell ends with an error, so a frontend's run-all does not go on to the next cell."""
    fake.delay = 0.1
    fake.on_chunk = lambda n: os.kill(os.getpid(), signal.SIGINT) if n == 2 else None
    with capture_output() as captured:
        result = ip.run_cell("%%llm\nsome long answer please\n")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert "Traceback" not in captured.stdout
    assert "KeyboardInterrupt" in captured.stdout


def test_first_token_time_is_shown_under_a_streamed_answer(ip: Any, fake: FakeOpenAI) -> None:
    with capture_output() as captured:
        ip.run_cell_magic("llm", "", "hello")
    usage = [o for o in outputs(captured) if "llm-magics-usage" in o["data"].get("text/html", "")]
    assert "first token" in usage[0]["data"]["text/plain"]


def test_ctrl_c_while_waiting_for_a_whole_answer_is_one_line_too(
    ip: Any, fake: FakeOpenAI, publisher: RecordingPublisher
) -> None:
    fake.latency = 3.0
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt) as info:
        ip.run_cell_magic("llm", "--no-stream", "slow")
    assert time.perf_counter() - started < 1.5
    assert len(info.value._render_traceback_()) == 1  # type: ignore[attr-defined]
    assert ip.user_ns["_llm"].finish_reason == "interrupted"
    assert answer_texts(publisher)[-1] == "\n\n*[interrupted]*"


def test_a_quick_failure_leaves_no_output_at_all_not_even_an_empty_one(
    ip: Any, fake: FakeOpenAI, publisher: RecordingPublisher
) -> None:
    # Case 19 of the hardening issue: a failed cell used to keep an empty output.
    fake.status = 400
    for line in ("--no-cache", "--no-cache --no-stream"):
        with pytest.raises(lm.BadRequestError):
            ip.run_cell_magic("llm", line, "hi")
    assert answer_texts(publisher) == []


@pytest.mark.parametrize("line", ["", "--no-stream"])
def test_a_slow_start_shows_a_placeholder_that_the_answer_then_replaces(
    ip: Any, fake: FakeOpenAI, publisher: RecordingPublisher, line: str
) -> None:
    fake.latency = 0.6
    ip.run_cell_magic("llm", line, "slowly")
    assert answer_texts(publisher)[0] == "…"
    assert answer_texts(publisher)[-1] == "echo: slowly"


# --- no hang, no spin (cases 5, 8 and 15 of the hardening issue) ---------------------------


def _fast_failing_registry(total: float, retries: int) -> None:
    from llm_magics._client import registry
    from llm_magics._runtime.http import Timeouts
    from llm_magics._runtime.retry import RetryPolicy

    reg = registry.current_registry()
    reg.timeouts = Timeouts(connect=1.0, total=total, idle=total)
    reg.retry = RetryPolicy(max_retries=retries, backoff_base=0.01, backoff_max=0.01)


def test_a_streamed_cell_that_times_out_ends_with_the_error_instead_of_spinning(
    ip: Any, fake: FakeOpenAI, publisher: RecordingPublisher
) -> None:
    _fast_failing_registry(total=0.3, retries=1)
    fake.latency = 5.0
    started = time.perf_counter()
    with pytest.raises(lm.TimeoutError) as info:
        ip.run_cell_magic("llm", "", "hello")
    assert time.perf_counter() - started < 3.0, "two attempts of 0.3 s, not a spin or an OOM"
    rendered = info.value._render_traceback_()  # type: ignore[attr-defined]
    assert len(rendered) == 1 and "did not answer within 0.3 s" in rendered[0]
    shown = answer_texts(publisher)
    assert any("retry 1 of 1" in text and "did not answer in time" in text for text in shown)
    assert shown[-1] == "", "the placeholder does not stay behind the error"


def test_a_non_streamed_cell_shows_each_retry_while_it_waits(
    ip: Any, fake: FakeOpenAI, publisher: RecordingPublisher
) -> None:
    _fast_failing_registry(total=5.0, retries=2)
    fake.status = 500
    with pytest.raises(lm.ProviderError):
        ip.run_cell_magic("llm", "--no-stream", "hello")
    assert len(fake.bodies) == 3, "a deterministic 500 is sent three times, not five"
    shown = answer_texts(publisher)
    assert any("HTTP 500; retry 1 of 2" in text for text in shown)
    assert any("HTTP 500; retry 2 of 2" in text for text in shown)


def test_a_cached_two_megabyte_answer_replays_in_a_streamed_cell_in_a_blink(
    ip: Any, fake: FakeOpenAI, publisher: RecordingPublisher
) -> None:
    fake.reply = "word " * 400_000  # 2 MB
    ip.run_cell_magic("llm", "--no-stream", "long one")  # fills the cache
    started = time.perf_counter()
    ip.run_cell_magic("llm", "", "long one")
    took = time.perf_counter() - started
    assert ip.user_ns["_llm"].cached and ip.user_ns["_llm"].text == fake.reply
    assert took < 2.0, f"replay took {took:.1f} s (it was 22 s when text grew by +=)"
