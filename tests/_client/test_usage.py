"""Usage totals of the kernel (by session, model and provider; cached answers cost nothing now
but keep their cost visible), their rendering, resets, the hook never failing a call, and
token counting for estimates."""

from __future__ import annotations

import math
import sys
import threading
import types

import pytest

import llm_magics as lm
from llm_magics._client import usage as usage_module
from llm_magics._client.usage import (
    MEDIA_TOKENS,
    ResponseHooks,
    approximate_tokens,
    count_tokens,
    estimate_request_tokens,
    record_response,
)
from llm_magics._client.usage import usage as usage_function
from llm_magics._core.session import SESSION
from llm_magics._core.types import ChatRequest, MediaPart, Message, Response, TextPart, Usage
from tests.support.server import FakeOpenAIServer

KEY = "sk-usage-test-key-00001111"


def test_usage_totals_by_session_model_and_provider_from_real_calls() -> None:
    lm.set_price("fake:priced", input=1.0, output=2.0)
    with FakeOpenAIServer() as srv:
        lm.register("fake", srv.base_url, api_key=KEY)
        priced = lm.client("fake:priced")
        fresh = [priced.chat("one"), priced.chat("two")]
        replay = priced.chat("one")  # from the response cache
        unknown = lm.client("fake:unpriced").chat("three")
    assert replay.cached and replay.cost == fresh[0].cost  # its original cost stays visible

    report = lm.usage()
    by_model = report.by_model["fake:priced"]
    assert (by_model.calls, by_model.cache_hits) == (3, 1)
    assert by_model.input_tokens == sum(r.usage.input_tokens for r in fresh)
    assert by_model.output_tokens == sum(r.usage.output_tokens for r in fresh)
    assert by_model.cost == pytest.approx(sum(r.cost or 0 for r in fresh))  # the hit adds 0
    assert by_model.saved == pytest.approx(fresh[0].cost or 0)
    assert report.by_model["fake:unpriced"].unpriced == 1
    assert report.by_model["fake:unpriced"].input_tokens == unknown.usage.input_tokens
    session = report.session
    assert (session.calls, session.cache_hits, session.unpriced) == (4, 1, 1)
    assert report.by_provider["fake"] == session
    assert report.cost == pytest.approx(by_model.cost)


def test_an_answer_that_fails_its_schema_is_still_counted() -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        city: str

    with FakeOpenAIServer() as srv:  # answers "echo: ...", which is not JSON
        lm.register("fake", srv.base_url, api_key=KEY)
        with pytest.raises(lm.OutputParseError) as caught:
            lm.client("fake:m", cache=False).chat("Name a city", schema=City)
    answer = caught.value.response
    assert answer is not None
    totals = lm.usage().by_model["fake:m"]
    assert totals.calls == 1 and totals.input_tokens == answer.usage.input_tokens > 0


def test_the_report_renders_as_a_table_and_says_what_is_unpriced() -> None:
    record_response(Response("a", "gpt-4o-mini", "openai", usage=Usage(1_000, 100)))
    record_response(Response("b", "mystery", "vllm", usage=Usage(10, 10)))
    report = lm.usage()
    markdown = report._repr_markdown_()
    text = str(report)
    for rendered in (markdown, text):
        assert "openai:gpt-4o-mini" in rendered and "vllm:mystery" in rendered
        assert "1 call of unknown price" in rendered
        assert "1,000" in rendered
    assert markdown.count("\n") >= 4 and markdown.startswith("| model")
    assert report.to_dict()["session"]["calls"] == 2


def test_reset_usage_starts_over_and_snapshots_do_not_change_afterwards() -> None:
    record_response(Response("a", "gpt-4o", "openai", usage=Usage(10, 10)))
    before = lm.usage()
    lm.reset_usage()
    record_response(Response("b", "gpt-4o", "openai", usage=Usage(10, 10)))
    assert before.session.calls == 1
    assert lm.usage().session.calls == 1
    lm.reset_usage()
    assert lm.usage().session.calls == 0
    assert "No LLM calls" in str(lm.usage())


def test_the_hook_fills_in_a_missing_cost_but_keeps_one_the_provider_gave() -> None:
    computed = Response("a", "gpt-4o", "openai", usage=Usage(1_000, 0))
    record_response(computed)
    assert computed.cost is not None and computed.cost > 0
    given = Response("a", "gpt-4o", "openai", usage=Usage(1_000, 0), cost=0.5)
    record_response(given)
    assert given.cost == 0.5


def test_the_hook_never_fails_a_call(caplog: pytest.LogCaptureFixture) -> None:
    # A provider body the cost code cannot read: the answer must still be delivered.
    odd = Response(
        "a", "gemini-2.5-flash", "gemini", usage=Usage(10, 10),
        raw={"usageMetadata": {"promptTokensDetails": [{"modality": "AUDIO", "tokenCount": "x"}]}},
    )  # fmt: skip
    SESSION.get(ResponseHooks).run(odd)
    assert any("could not account" in r.getMessage() for r in caplog.records)


def test_lm_usage_stays_the_function_after_the_accounting_module_is_imported() -> None:
    import llm_magics._client.usage  # noqa: F401

    assert lm.usage is usage_function
    assert lm.usage().session.calls == 0


def test_a_session_reset_starts_usage_totals_over() -> None:
    record_response(Response("a", "gpt-4o", "openai", usage=Usage(1, 1)))
    assert lm.usage().session.calls == 1
    SESSION.reset()
    assert lm.usage().session.calls == 0


def test_totals_stay_exact_when_threads_record_at_once() -> None:
    def work() -> None:
        for _ in range(500):
            record_response(Response("a", "gpt-4o", "openai", usage=Usage(1, 1)))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    session = lm.usage().session
    assert (session.calls, session.input_tokens) == (4_000, 4_000)


# --- token counting ------------------------------------------------------------------------


def test_the_approximation_is_four_ascii_characters_or_one_other_character_per_token() -> None:
    assert approximate_tokens("") == 0
    assert approximate_tokens("abcd" * 25) == 25
    assert approximate_tokens("abcde") == 2
    assert approximate_tokens("日本語") == 3
    assert count_tokens("hello world") == approximate_tokens("hello world")
    # Non-OpenAI models never use tiktoken.
    assert count_tokens("hello world", "anthropic:claude-haiku-4-5") == approximate_tokens(
        "hello world"
    )


def test_when_tiktoken_cannot_load_its_encoding_offline_counting_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = types.ModuleType("tiktoken")

    def unavailable(*args: object) -> None:
        raise OSError("no network to download the encoding")

    broken.encoding_for_model = unavailable  # type: ignore[attr-defined]
    broken.get_encoding = unavailable  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiktoken", broken)
    monkeypatch.setattr(usage_module, "_encodings", {})
    text = "The quick brown fox jumps over the lazy dog."
    assert count_tokens(text, "openai:gpt-4o-mini") == approximate_tokens(text)


def test_a_request_estimate_counts_system_messages_media_and_the_answer_budget() -> None:
    image = MediaPart("image", "image/png", data=b"png")
    request = ChatRequest(
        model="gpt-4o-mini",
        messages=[
            Message("user", "What is in this picture, in detail?"),
            Message("user", [TextPart("And this one?"), image]),
        ],
        system="Answer briefly.",
        max_tokens=200,
    )
    text_tokens = sum(
        approximate_tokens(t)
        for t in ("Answer briefly.", "What is in this picture, in detail?", "And this one?")
    )
    expected = text_tokens + 2 * usage_module.MESSAGE_OVERHEAD + MEDIA_TOKENS + 200
    assert estimate_request_tokens(request) == expected
    request.max_tokens = None
    assert estimate_request_tokens(request) == expected - 200
    assert math.isclose(estimate_request_tokens(request, exact=True), expected - 200)


def test_usage_shows_what_the_providers_prompt_cache_saved_beside_the_response_cache() -> None:
    from tests.support.batch_server import FakeBatchServer

    server = FakeBatchServer("openai", answer=lambda text: "ok")
    client = lm.client("openai:gpt-4o-mini", api_key=KEY, transport=server.transport())
    system = "Follow these rules. " * 400  # ~2,000 tokens shared by both prompts, first
    first = client.chat("question one", system=system)
    second = client.chat("question two", system=system)
    client.chat("question two", system=system)  # a response-cache hit
    assert first.usage.cached_input_tokens == 0 and second.usage.cached_input_tokens >= 1_024
    profile = lm.model_profile("openai:gpt-4o-mini")
    assert profile is not None and profile.input and profile.cached_input
    saved = second.usage.cached_input_tokens * (profile.input - profile.cached_input) / 1e6
    session = lm.usage().session
    assert session.cached_input_tokens == second.usage.cached_input_tokens
    assert session.cache_saved == pytest.approx(saved)
    assert session.saved == pytest.approx(second.cost or 0)  # the hit: what it cost before
    text = str(lm.usage())
    assert "saved: prompt cache" in text and "saved: response cache" in text
    assert lm.usage().to_dict()["session"]["cache_saved"] == pytest.approx(saved)
