"""Prompt caching in df.llm maps, on the wire (every body validated against the provider's
spec): the shared part of the rows goes first and byte-identical, OpenAI gets one
prompt_cache_key per map, Anthropic a cache_control breakpoint at the end of the shared part
when it is long enough, the cached tokens the servers report are billed at the cached and
cache-write prices, and the response-cache keys are those of plain online calls."""

from __future__ import annotations

import pandas as pd
import pytest

import llm_magics as lm
from tests.support.batch_server import FakeBatchServer

KEY = "sk-prompt-caching-SENTINEL-00001111"
RULES = "Read the review and weigh every sentence before you decide. " * 120  # ~1,800 tokens


def reviews(n: int) -> pd.DataFrame:
    return pd.DataFrame({"review": [f"the food was fine, visit {i}" for i in range(n)]})


def test_openai_rows_share_system_first_and_one_prompt_cache_key() -> None:
    server = FakeBatchServer("openai", answer=lambda text: '{"label": "positive"}')
    c = lm.client("openai:gpt-4o-mini", api_key=KEY, transport=server.transport())
    out = reviews(6).llm.classify(
        "Review: {review}", ["positive", "negative"], model=c, system=RULES, progress=False,
        concurrency=1,
    )  # fmt: skip
    assert (out["label"] == "positive").all()
    bodies = server.chat_bodies
    keys = {body["prompt_cache_key"] for body in bodies}
    assert len(keys) == 1 and next(iter(keys)).startswith("llm-magics-")
    systems = {body["messages"][0]["content"] for body in bodies}
    assert len(systems) == 1 and next(iter(systems)).startswith(RULES)  # first, identical
    assert all(body["messages"][0]["role"] == "system" for body in bodies)
    # After the first row, the shared prefix came from the provider's cache, at its price.
    assert server.bill.cached_tokens >= 5 * 1_024
    usage = lm.usage().session
    assert usage.cached_input_tokens == server.bill.cached_tokens
    assert usage.cost == pytest.approx(server.bill.usd)
    assert usage.cache_saved > 0


def test_a_rows_response_cache_key_is_that_of_the_same_plain_call() -> None:
    server = FakeBatchServer("openai", answer=lambda text: "fine")
    c = lm.client("openai:gpt-4o-mini", api_key=KEY, transport=server.transport())
    reviews(3).llm.map("Review: {review}", model=c, system=RULES, progress=False)
    again = c.chat("Review: the food was fine, visit 1", system=RULES)
    assert again.cached and server.chat_requests == 3


def test_anthropic_marks_the_end_of_the_shared_prefix_when_it_is_long_enough() -> None:
    server = FakeBatchServer("anthropic", answer=lambda text: "fine")
    c = lm.client("anthropic:claude-sonnet-4-5", api_key=KEY, transport=server.transport())
    template = RULES + "\n\nReview: {review}"  # the instructions inside the row's own text
    frame = reviews(4)
    frame.llm.map(template, model=c, progress=False, concurrency=1)
    sent = []
    for body in server.chat_bodies:
        first, rest = body["messages"][0]["content"]
        assert first["cache_control"] == {"type": "ephemeral"} and "cache_control" not in rest
        assert first["text"] == RULES + "\n\nReview: the food was fine, visit "
        sent.append(first["text"] + rest["text"])  # the two blocks are the prompt, unchanged
    assert sent == [template.format(review=r) for r in frame.review]
    written = server.bill.written_tokens
    assert written > 0 and server.bill.cached_tokens == 3 * written
    usage = lm.usage().session
    assert usage.cache_write_tokens == server.bill.written_tokens
    assert usage.cost == pytest.approx(server.bill.usd)  # reads at 0.1x, the write at 1.25x


def test_anthropic_puts_the_breakpoint_after_the_system_prompt_when_rows_share_no_text() -> None:
    server = FakeBatchServer("anthropic", answer=lambda text: "fine")
    c = lm.client("anthropic:claude-sonnet-4-5", api_key=KEY, transport=server.transport())
    frame = pd.DataFrame({"review": ["alpha", "beta", "gamma"]})
    frame.llm.map("{review}", model=c, system=RULES, progress=False, concurrency=1)
    for body in server.chat_bodies:
        assert body["system"] == [
            {"type": "text", "text": RULES, "cache_control": {"type": "ephemeral"}}
        ]
    assert server.bill.cached_tokens > 0


def test_anthropic_sends_no_breakpoint_for_a_prefix_too_short_to_cache() -> None:
    server = FakeBatchServer("anthropic", answer=lambda text: "fine")
    c = lm.client("anthropic:claude-haiku-4-5", api_key=KEY, transport=server.transport())
    reviews(3).llm.map("Review: {review}", model=c, system=RULES, progress=False)
    assert all(isinstance(body["system"], str) for body in server.chat_bodies)
    assert all(isinstance(b["messages"][0]["content"], str) for b in server.chat_bodies)
