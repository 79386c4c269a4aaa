"""The reports' words: the line under each answer, and a session's metrics with latency."""

from __future__ import annotations

from llm_magics._chat.metrics import CallStats, SessionMetrics
from llm_magics._chat.turns import ConversationUsage
from llm_magics._core.types import Response, Usage
from llm_magics.cli.report import metrics_text, turn_line


def test_the_line_under_an_answer_gives_model_tokens_cost_latency_and_session_totals() -> None:
    r = Response("hi", "gpt-4o-mini", "openai", usage=Usage(1200, 34), cost=0.0002, latency=1.24)
    session = ConversationUsage(calls=3, input_tokens=3000, output_tokens=100, cost=0.0006)
    assert turn_line(r, session, 3) == (
        "openai:gpt-4o-mini · 1,200 → 34 tokens · $0.0002 · 1.2 s · "
        "session: 3 turn(s), 3,100 tokens, $0.0006"
    )
    r.cached = True
    assert " · cached · " in turn_line(r, session, 3)


def test_a_stopped_answer_shows_the_session_totals_with_the_unknown_cost_marked() -> None:
    session = ConversationUsage(calls=2, input_tokens=10, output_tokens=5, cost=0.0, unpriced=1)
    assert turn_line(None, session, 2) == "session: 2 turn(s), 15 tokens, $0+?"


def test_metrics_show_latency_when_calls_recorded_it_and_say_how_many_did() -> None:
    mini = CallStats("openai:gpt-4o-mini", 3, 300, 60, 0.003, 0, 1.25, 2, 2.0)
    big = CallStats("openai:gpt-4o", 1, 100, 20, 0.0, 1)
    total = CallStats("total", 4, 400, 80, 0.003, 1, 1.25, 2, 2.0)
    text = metrics_text(SessionMetrics("s", 4, 1, (mini, big), total, None, None))
    lines = text.splitlines()
    assert lines[0] == "Session s: 4 turn(s), 1 stopped early"
    assert lines[2].split() == [
        "model", "calls", "input", "tok", "output", "tok", "tokens", "cost", "latency", "slowest"
    ]  # fmt: skip
    assert lines[4].split()[-4:] == ["1.2", "s", "2.0", "s"], "mean, then slowest"
    assert lines[5].split()[1:] == ["1", "100", "20", "120", "unknown", "?", "?"]
    assert lines[6].split()[0] == "total" and "$0.003+?" in lines[6]
    assert lines[-1] == "Latency: 2 of 4 call(s) recorded one"


def test_metrics_without_any_latency_leave_its_columns_out_and_say_so() -> None:
    only = CallStats("local:smollm2-135m", 2, 50, 10, 0.0)
    text = metrics_text(SessionMetrics("s", 2, 0, (only,), only, None, None))
    assert "latency" not in text.splitlines()[2]
    assert text.splitlines()[-1] == "Latency: not recorded for these calls."
