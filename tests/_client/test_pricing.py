"""Model profiles and cost: the formula over input, cached, cache-write, audio and output
tokens; long-context tiers; lookups of dated snapshots; unknown models and unknown prices give
None, never a guess; user profiles win; and every Response of a real call carries its cost."""

from __future__ import annotations

from typing import Any

import pytest

import llm_magics as lm
from llm_magics._client.pricing import ModelProfile, cost_of, profile_for
from llm_magics._core.session import SESSION
from llm_magics._core.types import Response, Usage
from tests.support.server import FakeOpenAIServer

M = 1_000_000


def response(provider: str, model: str, usage: Usage, raw: Any = None) -> Response:
    return Response("answer", model, provider, usage=usage, raw=raw)


def test_cost_is_input_and_output_tokens_at_the_profile_prices() -> None:
    p = profile_for("openai", "gpt-4o-mini")
    assert p is not None and p.input is not None and p.output is not None
    cost = cost_of(response("openai", "gpt-4o-mini", Usage(1_000, 500)))
    assert cost == pytest.approx((1_000 * p.input + 500 * p.output) / M)


def test_published_prices_of_a_few_models_per_provider() -> None:
    # USD per 1M tokens from each provider's pricing page (standard tier).
    expected = {
        ("openai", "gpt-4o"): (2.50, 10.00),
        ("openai", "gpt-4o-mini"): (0.15, 0.60),
        ("openai", "gpt-4.1"): (2.00, 8.00),
        ("anthropic", "claude-sonnet-4-5"): (3.00, 15.00),
        ("anthropic", "claude-haiku-4-5"): (1.00, 5.00),
        ("gemini", "gemini-2.5-flash"): (0.30, 2.50),
        ("groq", "llama-3.3-70b-versatile"): (0.59, 0.79),
        ("cerebras", "llama3.1-8b"): (0.10, 0.10),
    }
    for (provider, model), (price_in, price_out) in expected.items():
        p = profile_for(provider, model)
        assert p is not None, model
        assert (p.input, p.output) == (price_in, price_out), model


def test_cached_and_cache_write_tokens_are_priced_as_such() -> None:
    p = profile_for("anthropic", "claude-sonnet-4-5")
    assert p is not None and p.cached_input and p.cache_write and p.input and p.output
    usage = Usage(
        input_tokens=10_000, output_tokens=100, cached_input_tokens=6_000, cache_write_tokens=3_000
    )
    expected = 1_000 * p.input + 6_000 * p.cached_input + 3_000 * p.cache_write + 100 * p.output
    assert cost_of(response("anthropic", "claude-sonnet-4-5", usage)) == pytest.approx(expected / M)


def test_an_unknown_cached_price_makes_the_cost_unknown_not_a_guess() -> None:
    assert profile_for("gemini", "gemini-2.0-flash-lite").cached_input is None  # type: ignore[union-attr]
    with_cache = Usage(input_tokens=1_000, output_tokens=10, cached_input_tokens=800)
    assert cost_of(response("gemini", "gemini-2.0-flash-lite", with_cache)) is None
    assert cost_of(response("gemini", "gemini-2.0-flash-lite", Usage(1_000, 10))) is not None


@pytest.mark.parametrize(
    ("provider", "model", "cached_price"),
    [
        ("openai", "gpt-4o", 1.25),  # 50 % off
        ("openai", "gpt-4.1", 0.50),  # 75 % off
        ("openai", "gpt-5", 0.125),  # 90 % off
        ("anthropic", "claude-sonnet-4-5", 0.30),  # reads at 0.1x
        ("gemini", "gemini-2.5-flash", 0.03),  # implicit caching, 90 % off
        ("gemini", "gemini-2.5-pro", 0.125),
    ],
)
def test_cached_input_is_billed_at_the_published_cached_price(
    provider: str, model: str, cached_price: float
) -> None:
    p = profile_for(provider, model)
    assert p is not None and p.input is not None and p.output is not None
    usage = Usage(input_tokens=2_000, output_tokens=10, cached_input_tokens=1_500)
    expected = (500 * p.input + 1_500 * cached_price + 10 * p.output) / M
    assert cost_of(response(provider, model, usage)) == pytest.approx(expected)


def test_what_the_prompt_cache_saved_is_the_plain_price_less_the_charged_one() -> None:
    p = profile_for("anthropic", "claude-sonnet-4-5")
    assert p is not None and p.input and p.cached_input and p.cache_write
    read = Usage(input_tokens=2_000, output_tokens=10, cached_input_tokens=1_500)
    assert p.cache_saving(read) == pytest.approx(1_500 * (p.input - p.cached_input) / M)
    # The write costs 1.25x: the first call of a cached prefix saves less than nothing.
    write = Usage(input_tokens=2_000, output_tokens=10, cache_write_tokens=1_500)
    assert p.cache_saving(write) == pytest.approx(-1_500 * (p.cache_write - p.input) / M)
    assert p.cache_saving(Usage(2_000, 10)) == 0.0


def test_a_batch_job_bills_half_of_every_price_cached_ones_included() -> None:
    for provider, model, cached in [
        ("openai", "gpt-4o-mini", 1_024),
        ("anthropic", "claude-haiku-4-5", 1_024),
        ("gemini", "gemini-2.5-flash", 1_024),
        ("groq", "llama-3.3-70b-versatile", 0),  # Groq caches on other models only
    ]:
        p = profile_for(provider, model)
        assert p is not None and p.batch == 0.5, model
        usage = Usage(input_tokens=2_000, output_tokens=100, cached_input_tokens=cached)
        online = p.cost(usage)
        assert online is not None and p.cost(usage, batch=True) == pytest.approx(online / 2)
    # A vendor without a Batch API has no batch price: unknown, not the online one.
    cerebras = profile_for("cerebras", "llama3.1-8b")
    assert cerebras is not None and cerebras.cost(Usage(100, 10), batch=True) is None


def test_long_prompts_use_the_long_context_prices() -> None:
    p = profile_for("gemini", "gemini-2.5-pro")
    assert p is not None and p.long_context_threshold and p.long_input and p.long_output
    assert p.input and p.output
    short = Usage(p.long_context_threshold, 1_000)
    long = Usage(p.long_context_threshold + 1, 1_000)
    assert cost_of(response("gemini", "gemini-2.5-pro", short)) == pytest.approx(
        (short.input_tokens * p.input + 1_000 * p.output) / M
    )
    assert cost_of(response("gemini", "gemini-2.5-pro", long)) == pytest.approx(
        (long.input_tokens * p.long_input + 1_000 * p.long_output) / M
    )


def test_gemini_audio_input_tokens_use_the_audio_price() -> None:
    p = profile_for("gemini", "gemini-2.5-flash")
    assert p is not None and p.audio_input and p.input and p.output
    raw = {
        "usageMetadata": {
            "promptTokenCount": 1_000,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 200},
                {"modality": "AUDIO", "tokenCount": 800},
            ],
        }
    }
    cost = cost_of(response("gemini", "gemini-2.5-flash", Usage(1_000, 50), raw))
    assert cost == pytest.approx((200 * p.input + 800 * p.audio_input + 50 * p.output) / M)


def test_dated_snapshots_and_latest_aliases_find_their_model() -> None:
    assert profile_for("openai", "gpt-4o-mini-2024-07-18") == profile_for("openai", "gpt-4o-mini")
    assert profile_for("anthropic", "claude-sonnet-4-5-20250929") == profile_for(
        "anthropic", "claude-sonnet-4-5"
    )
    assert profile_for("anthropic", "claude-3-5-haiku-latest") is not None
    assert profile_for("gemini", "models/gemini-2.5-flash") is not None
    # A snapshot with a price of its own keeps it.
    assert profile_for("openai", "gpt-4o-2024-05-13") != profile_for("openai", "gpt-4o")


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o-mini-tts"),  # a different model that merely starts the same
        ("openai", "some-future-model"),
        ("groq", "gpt-4o"),  # the name is OpenAI's, the price would not be
        ("vllm", "qwen2.5-7b"),
    ],
)
def test_unknown_models_have_no_profile_and_cost_none(provider: str, model: str) -> None:
    assert profile_for(provider, model) is None
    assert cost_of(response(provider, model, Usage(100, 100))) is None


def test_a_response_that_reports_no_usage_has_an_unknown_cost_unless_the_model_is_free() -> None:
    assert cost_of(response("openai", "gpt-4o", Usage())) is None
    assert cost_of(response("ollama", "llama3.2", Usage())) == 0.0
    assert cost_of(response("local", "smollm2-135m", Usage(500, 20))) == 0.0


def test_set_price_and_register_model_profile_override_and_extend() -> None:
    lm.set_price("vllm:qwen2.5-7b", input=0.2, output=0.6)
    assert cost_of(response("vllm", "qwen2.5-7b", Usage(M, M))) == pytest.approx(0.8)
    lm.register_model_profile("vllm:*", input=0, output=0, context_window=32_768)
    assert cost_of(response("vllm", "any-other", Usage(10, 10))) == 0.0
    # Correcting a built-in keeps what was not given.
    builtin = profile_for("openai", "gpt-4o")
    assert builtin is not None
    corrected = lm.set_price("openai:gpt-4o", input=1.0, output=2.0)
    assert corrected.context_window == builtin.context_window
    assert corrected.cached_input == builtin.cached_input
    assert corrected.source == "user"
    assert lm.model_profile("openai:gpt-4o-2024-08-06") == corrected
    SESSION.reset()  # a fresh kernel session knows the built-ins only
    assert lm.model_profile("openai:gpt-4o") == builtin


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"input": -1}, "input must be a price"),
        ({"output": "cheap"}, "output must be a price"),
        ({"context_window": 0}, "context_window must be a positive"),
        ({"rpm": 2.5}, "rpm must be a positive"),
        ({"price": 1}, "unknown model profile field"),
    ],
)
def test_bad_profile_values_are_refused_with_the_reason(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(lm.ConfigError, match=message):
        lm.register_model_profile("vllm:m", **options)


def test_a_model_id_without_a_provider_is_refused() -> None:
    with pytest.raises(lm.ConfigError, match="provider:model"):
        lm.set_price("gpt-4o", input=1, output=1)


def test_profiles_are_immutable_records() -> None:
    p = profile_for("openai", "gpt-4o")
    assert isinstance(p, ModelProfile) and p.model_id == "openai:gpt-4o"
    with pytest.raises(AttributeError):
        p.input = 0.0  # type: ignore[misc]


def test_every_response_of_a_real_call_carries_its_cost() -> None:
    lm.set_price("fake:priced", input=2.0, output=4.0)
    with FakeOpenAIServer() as srv:
        lm.register("fake", srv.base_url, api_key="sk-pricing-test-0000")
        priced = lm.client("fake:priced").chat("how much?")
        unpriced = lm.client("fake:unknown").chat("how much?")
    assert priced.usage.input_tokens > 0 and priced.usage.output_tokens > 0
    expected = (priced.usage.input_tokens * 2.0 + priced.usage.output_tokens * 4.0) / M
    assert priced.cost == pytest.approx(expected)
    assert unpriced.cost is None


def test_known_profiles_list_a_providers_models_the_users_winning_without_the_wildcard() -> None:
    from llm_magics._client.pricing import known_profiles

    names = [p.model for p in known_profiles("openai")]
    assert "gpt-4o-mini" in names and names == sorted(names)
    lm.set_price("openai:gpt-4o-mini", input=9.0, output=9.0)
    lm.register_model_profile("openai:my-finetune", context_window=1000)
    mine = {p.model: p for p in known_profiles("openai")}
    assert mine["gpt-4o-mini"].input == 9.0 and mine["my-finetune"].context_window == 1000
    assert known_profiles("ollama") == [], "the ollama:* row holds for any model: not a model"
    lm.register("gateway", "http://127.0.0.1:9/v1", like="openai")
    assert "gpt-4o" in [p.model for p in known_profiles("gateway")]
