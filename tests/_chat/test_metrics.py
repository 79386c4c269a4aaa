"""A conversation's metrics: calls, tokens and cost by model (summaries apart), totals that are
conv.usage exactly, stopped turns counted, and latency from the turns that recorded one."""

from __future__ import annotations

import pytest

from llm_magics._chat.memory import Conversation
from llm_magics._chat.metrics import session_metrics
from llm_magics._chat.summary import Summary
from llm_magics._chat.turns import SummaryCall
from llm_magics._core.types import Response, Usage


def answer(text: str, model: str, cost: float | None, finish: str = "stop") -> Response:
    return Response(text, model, "openai", usage=Usage(10, 5), finish_reason=finish, cost=cost)


def test_calls_are_grouped_by_model_with_summaries_apart_and_totals_equal_usage() -> None:
    conv = Conversation("m")
    conv.add("a", answer("1", "gpt-4o-mini", 0.001))
    conv.add("b", answer("2", "gpt-4o", None))
    conv.add("c", answer("3", "gpt-4o-mini", 0.002, finish="interrupted"))
    conv.add_assistant("written by hand")
    conv.summary = Summary("so far", 3, [SummaryCall("openai:gpt-4o-mini", Usage(30, 8), 0.0005)])
    m = session_metrics(conv)
    rows = {r.label: r for r in m.by_model}
    assert list(rows) == ["openai:gpt-4o-mini", "openai:gpt-4o", "openai:gpt-4o-mini (summaries)"]
    mini = rows["openai:gpt-4o-mini"]
    assert (mini.calls, mini.input_tokens, mini.output_tokens) == (2, 20, 10)
    assert mini.cost == pytest.approx(0.003) and mini.unpriced == 0
    assert rows["openai:gpt-4o"].unpriced == 1
    used = conv.usage
    total = m.total
    assert (total.calls, total.tokens, total.unpriced) == (used.calls, used.tokens, used.unpriced)
    assert total.cost == pytest.approx(used.cost)
    assert (m.turns, m.interrupted) == (4, 1)


def test_latency_is_the_mean_and_slowest_of_the_calls_that_recorded_one() -> None:
    conv = Conversation("m")
    for wait in (0.5, None, 1.5):
        conv.add("q", answer("a", "gpt-4o-mini", 0.0))
        conv.turns[-1].latency = wait  # type: ignore[attr-defined]
    total = session_metrics(conv).total
    assert (total.latency, total.slowest, total.timed, total.calls) == (1.0, 1.5, 2, 3)


def test_turns_without_a_latency_leave_it_unknown_and_times_span_the_turns() -> None:
    conv = Conversation("m")
    conv.add("q", answer("a", "gpt-4o-mini", 0.0))
    conv.add("q", answer("a", "gpt-4o-mini", 0.0))
    conv.turns[0].at, conv.turns[1].at = 100.0, 250.0
    m = session_metrics(conv)
    assert (m.total.latency, m.total.timed) == (None, 0)
    assert (m.first_at, m.last_at) == (100.0, 250.0)
    assert session_metrics(Conversation("empty")).total.calls == 0
