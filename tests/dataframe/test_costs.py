"""Limits on what a df.llm call spends: a call whose estimate does not fit the kernel's budget
or its max_cost= is refused before anything is sent (with the estimate and how to raise the
limit), one of unknown price is refused saying so, and a running map stops sending when the
spend reaches the limit: rows not sent say so, nothing answered is lost, and raising the limit
and rerunning sends only the rest."""

from __future__ import annotations

import pandas as pd
import pytest

import llm_magics as lm
from tests.support.batch_server import FakeBatchServer

KEY = "sk-costs-test-SENTINEL-000011112222"


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"review": [f"review number {i}" for i in range(n)]})


def client(server: FakeBatchServer) -> lm.Client:
    return lm.client("openai:gpt-4o-mini", api_key=KEY, transport=server.transport())


def test_a_map_whose_estimate_passes_the_budget_is_refused_before_sending() -> None:
    server = FakeBatchServer("openai")
    c = client(server)
    estimate = frame(20).llm.estimate("Summarise {review}", model=c)
    assert estimate.usd is not None and estimate.usd > 0
    lm.budget(usd=estimate.usd / 2)
    with pytest.raises(lm.BudgetExceededError) as info:
        frame(20).llm.map("Summarise {review}", model=c, progress=False)
    assert server.chat_requests == 0
    message = str(info.value)
    assert "nothing was sent: 20 calls to openai:gpt-4o-mini would cost about" in message
    assert "the kernel's budget has" in message and "lm.budget(usd=" in message
    assert info.value.estimate == pytest.approx(estimate.usd)


def test_max_cost_refuses_a_map_whose_estimate_is_higher() -> None:
    server = FakeBatchServer("openai")
    with pytest.raises(
        lm.BudgetExceededError, match=r"max_cost= is \$0\.000001\. Pass max_cost=0\.01"
    ):
        frame(5).llm.map("Summarise {review}", model=client(server), max_cost=1e-6, progress=False)
    assert server.chat_requests == 0


def test_a_map_of_unknown_price_is_refused_while_a_limit_is_set() -> None:
    server = FakeBatchServer("openai")
    lm.register("srv", "https://llm.test/v1", api_key=KEY)
    c = lm.client("srv:my-model", transport=server.transport())
    with pytest.raises(lm.BudgetExceededError, match=r"cost of 3 calls.*is unknown"):
        frame(3).llm.map("Summarise {review}", model=c, max_cost=5, progress=False)
    assert server.chat_requests == 0


def test_a_running_map_stops_at_the_budget_and_a_rerun_with_more_finishes_it() -> None:
    # Answers far longer than the estimate guesses: the run meets the budget part way.
    server = FakeBatchServer("openai", answer=lambda text: "word " * 400)
    c = client(server)
    estimate = frame(10).llm.estimate("{review}", model=c)
    assert estimate.usd is not None
    lm.budget(usd=estimate.usd * 1.05)
    out = frame(10).llm.map("{review}", model=c, progress=False, concurrency=1)
    answered = out["llm"].notna()
    assert 1 <= answered.sum() < 10
    assert out.loc[answered, "llm_error"].isna().all()
    refused = out.loc[~answered, "llm_error"]
    assert refused.str.startswith("BudgetExceededError: not sent: this kernel's budget").all()
    assert refused.str.contains("answered rows are kept in the cache").all()
    status = lm.budget()
    assert status.limit is not None and status.spent <= status.limit
    assert server.chat_requests == answered.sum()  # the refused rows were never sent
    lm.budget(usd=1.0)
    again = frame(10).llm.map("{review}", model=c, progress=False)
    assert again["llm"].notna().all() and again["llm_error"].isna().all()
    assert server.chat_requests == 10  # only the rows not sent before went out


def test_estimate_in_batch_mode_is_half_the_online_price() -> None:
    c = client(FakeBatchServer("openai"))
    online = frame(10).llm.estimate("Summarise {review}", model=c)
    batch = frame(10).llm.estimate("Summarise {review}", model=c, mode="batch")
    assert online.usd is not None and batch.usd == pytest.approx(online.usd / 2)
    assert "at the batch price" in str(batch) and "batch" not in str(online)


def test_max_cost_stops_a_running_map_and_counts_only_its_own_spend() -> None:
    server = FakeBatchServer("openai", answer=lambda text: "word " * 400)
    c = client(server)
    c.chat("spent before the map")  # the kernel's earlier spend is not the map's
    estimate = frame(10).llm.estimate("{review}", model=c)
    assert estimate.usd is not None
    out = frame(10).llm.map(
        "{review}", model=c, progress=False, concurrency=1, max_cost=estimate.usd * 1.05
    )
    answered = out["llm"].notna()
    assert 1 <= answered.sum() < 10
    refused = out.loc[~answered, "llm_error"]
    assert refused.str.startswith("BudgetExceededError: not sent: max_cost= of").all()
    assert refused.str.contains("pass a higher max_cost= and rerun").all()
    assert server.chat_requests == 1 + answered.sum()
