"""The kernel's budget (lm.budget): what it reports, the refusal of a call that would pass it
before anything is sent (the key never in the message), calls of unknown price refused while a
budget is set, cache hits free, streams held to it too, and bad amounts named."""

from __future__ import annotations

import pytest

import llm_magics as lm
from llm_magics._client.budget import Budget, spending_cap
from llm_magics._core.session import SESSION
from tests.support.batch_server import FakeBatchServer

KEY = "sk-budget-test-SENTINEL-000011112222"


def client(server: FakeBatchServer, **options: object) -> lm.Client:
    return lm.client("openai:gpt-4o-mini", api_key=KEY, transport=server.transport(), **options)


def test_without_a_budget_the_report_says_so_and_how_to_set_one() -> None:
    status = lm.budget()
    assert status.limit is None and status.spent == 0.0
    assert "No budget" in str(status) and "lm.budget(usd=5)" in str(status)


def test_a_call_that_would_pass_the_budget_is_refused_before_it_is_sent() -> None:
    server = FakeBatchServer("openai", answer=lambda text: "ok")
    c = client(server)
    c.chat("first question")
    spent = lm.budget().spent
    assert spent > 0
    lm.budget(usd=spent + 1e-7)  # less than any further call costs
    with pytest.raises(lm.BudgetExceededError) as info:
        c.chat("second question")
    assert server.chat_requests == 1  # nothing was sent
    message = str(info.value)
    assert "this kernel's budget" in message and "lm.budget(usd=...)" in message
    assert KEY not in message and info.value.limit == pytest.approx(spent + 1e-7)
    assert c.chat("first question").cached  # a cache hit costs nothing: always allowed
    lm.budget(usd=1.0)
    assert c.chat("second question").text == "ok"
    assert lm.budget().remaining == pytest.approx(1.0 - lm.budget().spent)


def test_a_stream_is_held_to_the_budget_too() -> None:
    server = FakeBatchServer("openai", answer=lambda text: "ok")
    lm.budget(usd=0)
    with pytest.raises(lm.BudgetExceededError):
        list(client(server).stream("a question"))
    assert server.chat_requests == 0


def test_a_call_of_unknown_price_is_refused_while_a_budget_is_set() -> None:
    server = FakeBatchServer("openai", answer=lambda text: "ok")
    lm.register("srv", "https://llm.test/v1", api_key=KEY)
    c = lm.client("srv:my-model", transport=server.transport())
    lm.budget(usd=5)
    with pytest.raises(lm.BudgetExceededError) as info:
        c.chat("a question")
    assert "price of srv:my-model is unknown" in str(info.value)
    assert "lm.set_price('srv:my-model'" in str(info.value)
    lm.budget("off")
    assert c.chat("a question").text == "ok"
    assert lm.budget().limit is None


def test_spend_counts_every_fresh_answer_of_the_kernel_even_after_reset_usage() -> None:
    server = FakeBatchServer("openai", answer=lambda text: "ok")
    first = client(server).chat("one")
    lm.reset_usage()
    second = client(server).chat("two")
    assert lm.budget().spent == pytest.approx((first.cost or 0) + (second.cost or 0))


def test_a_spending_cap_holds_only_inside_its_block() -> None:
    server = FakeBatchServer("openai", answer=lambda text: "ok")
    c = client(server)
    with spending_cap(0.0), pytest.raises(lm.BudgetExceededError) as info:
        c.chat("capped")
    assert "max_cost=" in str(info.value) and "higher max_cost=" in str(info.value)
    assert c.chat("capped").text == "ok"


@pytest.mark.parametrize("bad", [-1, float("nan"), "five", True])
def test_a_budget_that_is_no_amount_is_refused_with_what_it_takes(bad: object) -> None:
    with pytest.raises(lm.ConfigError, match="US dollars"):
        lm.budget(bad)  # type: ignore[arg-type]
    assert SESSION.get(Budget).usd is None


def test_answers_whose_cost_turns_out_unknown_are_counted_as_such() -> None:
    # Gemini 2.0 Flash-Lite has no published cached-input price: a cache hit makes the
    # answer's cost unknown, and the budget says how many such answers it could not count.
    server = FakeBatchServer("gemini", answer=lambda text: "ok")
    c = lm.client("gemini:gemini-2.0-flash-lite", api_key=KEY, transport=server.transport())
    lm.budget(usd=1)
    system = "Follow every one of these rules. " * 200
    c.chat("first", system=system)
    second = c.chat("second", system=system)
    assert second.usage.cached_input_tokens > 0 and second.cost is None
    status = lm.budget()
    assert status.unknown == 1 and "+ 1 call of unknown price" in str(status)
