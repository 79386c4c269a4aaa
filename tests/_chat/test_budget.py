"""Token budgets: each truncation strategy does what its name says, never splits a turn nor
drops the system message or the new prompt, and a 200-turn conversation never sends a request
over its budget; a budget too small, or an unknown strategy, is a clear error."""

from __future__ import annotations

import json
import math

import httpx2
import pytest

import llm_magics as lm
from llm_magics._chat.budget import fit, message_tokens
from llm_magics._chat.memory import Conversation
from llm_magics._core.types import Message, Response, Usage
from tests.providers.test_openai_compat import completion
from tests.support.specs import SpecTransport


def turn(i: int) -> list[Message]:
    return [
        Message("user", f"question {i} " + "x" * 36),
        Message("assistant", f"answer {i} " + "y" * 36),
    ]


TURNS = [turn(i) for i in range(20)]
PER_TURN = sum(message_tokens(m) for m in TURNS[0])
PROMPT = [Message("user", "the new question")]


def test_everything_is_kept_while_it_fits() -> None:
    got = fit(TURNS[:3], PROMPT, 10_000)
    assert got.kept == (0, 1, 2) and got.dropped == 0 and not got.exact


def test_drop_oldest_keeps_the_latest_turns_that_fit() -> None:
    budget = 5 * PER_TURN + message_tokens(PROMPT[0])
    got = fit(TURNS, PROMPT, budget, "drop_oldest")
    assert got.kept == tuple(range(15, 20)) and got.tokens <= budget and got.dropped == 15


def test_drop_middle_keeps_the_first_turn_and_the_latest() -> None:
    budget = 5 * PER_TURN + message_tokens(PROMPT[0])
    got = fit(TURNS, PROMPT, budget, "drop_middle")
    assert got.kept == (0, 16, 17, 18, 19) and got.tokens <= budget


def test_sliding_moves_its_start_in_steps_so_the_request_prefix_stays_stable() -> None:
    budget = 10 * PER_TURN + message_tokens(PROMPT[0])
    starts = []
    for n in range(11, 21):
        got = fit(TURNS[:n], PROMPT, budget, "sliding")
        assert got.tokens <= budget and got.kept == tuple(range(got.kept[0], n))
        starts.append(got.kept[0])
    oldest = [fit(TURNS[:n], PROMPT, budget, "drop_oldest").kept[0] for n in range(11, 21)]
    assert len(set(oldest)) == 10, "drop_oldest moves with every turn"
    assert len(set(starts)) <= 3, f"sliding moves in steps: {starts}"


def test_a_budget_smaller_than_the_system_message_and_prompt_says_by_how_much() -> None:
    system = Message("system", "s" * 400)
    with pytest.raises(
        lm.ConfigError, match=r"alone take \d+ tokens, over the .* budget of 20 \(by \d+\)"
    ):
        fit(TURNS, [system, *PROMPT], 20)


@pytest.mark.parametrize("make", [
    lambda: Conversation("c", truncation="newest_first"),
    lambda: lm.session("c", truncation="newest_first"),
])  # fmt: skip
def test_an_unknown_truncation_strategy_names_the_choices(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        lm.ConfigError, match="drop_oldest, sliding, drop_middle, summarize; got 'newest_first'"
    ):
        make()


def test_the_budget_defaults_to_the_models_context_window_less_the_answer() -> None:
    conv = Conversation("c", model="openai:gpt-4o-mini")
    conv.add("hi", Response("hello", "gpt-4o-mini", "openai", usage=Usage(3, 1)))
    conv.messages("again")
    assert conv.last_fit is not None and conv.last_fit.budget == 128_000 - 4_096
    conv.messages("again", answer_tokens=1_000)
    assert conv.last_fit.budget == 127_000
    unknown = Conversation("u", model="openai:some-future-model")
    assert [m.text for m in unknown.messages("x")] == ["x"] and unknown.last_fit is None


def provider_count(body: dict[str, object], factor: float) -> int:
    """A provider whose tokenizer counts ``factor`` times the package's estimate."""
    sent = [Message(m["role"], m["content"]) for m in body["messages"]]  # type: ignore[attr-defined, index]
    return math.ceil(factor * sum(message_tokens(m, "gpt-4o-mini") for m in sent))


def counting_server(factor: float) -> SpecTransport:
    """An OpenAI server that reports the prompt tokens it counted."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        reply = completion("an answer " + "z" * 80)
        reply["usage"]["prompt_tokens"] = provider_count(json.loads(request.content), factor)
        return httpx2.Response(200, json=reply)

    return SpecTransport("openai", handle)


@pytest.mark.parametrize("truncation", ["drop_oldest", "sliding", "drop_middle"])
@pytest.mark.parametrize("factor", [1.0, 1.4])
def test_200_turns_never_send_a_request_over_the_budget(truncation: str, factor: float) -> None:
    # factor 1.4: the provider counts 40 % more than the estimate; the conversation learns
    # it from the first answer's usage and keeps every later request inside the budget.
    transport = counting_server(factor)
    client = lm.client(
        "openai:gpt-4o-mini", api_key="sk-test-0123456789abcdef", transport=transport, cache=False
    )
    conv = Conversation("long", system="You are terse.", max_tokens=600, truncation=truncation)
    for i in range(200):
        conv.chat(f"question {i}: " + "q" * 60, client=client)
    transport.assert_clean()
    assert len(conv) == 200, "every turn stays in the record"
    assert conv.last_fit is not None
    assert conv.last_fit.counted == ("estimate" if factor == 1.0 else "calibrated")
    for i, body in enumerate(transport.bodies):
        assert provider_count(body, factor) <= 600, f"request {i}, by the provider's count"
        sent = [Message(m["role"], m["content"]) for m in body["messages"]]
        assert sent[0].role == "system" and sent[-1].text.startswith(f"question {i}:")
        roles = [m.role for m in sent[1:-1]]
        assert roles == ["user", "assistant"] * (len(roles) // 2), "no turn is split"
    assert len(transport.bodies[-1]["messages"]) < 2 * 200
