"""The prompt-cache hint of a map: the prefix its prompts share (cut at a word), a key per map
that depends on what is shared, and a breakpoint only where the vendor needs one and the
shared part is long enough for its cache."""

from __future__ import annotations

import llm_magics as lm
from llm_magics._client.prompt_cache import prompt_cache_for, shared_prefix

KEY = "sk-prompt-cache-SENTINEL-0000111122"


def test_the_shared_prefix_ends_at_a_word_boundary() -> None:
    assert shared_prefix(["Review: number 12", "Review: number 13"]) == "Review: number "
    assert shared_prefix(["Review: ab", "Review: ac"]) == "Review: "
    assert shared_prefix(["alpha", "beta"]) == ""
    assert shared_prefix(["same text", "same text"]) == ""  # one prompt: nothing is shared


def test_openai_gets_a_key_per_map_and_no_breakpoint() -> None:
    c = lm.client("openai:gpt-4o-mini", api_key=KEY)
    hint = prompt_cache_for(c, ["Q: one", "Q: two"], {"system": "rules " * 500})
    assert hint is not None and hint.prefix == "Q: " and not hint.breakpoint
    assert hint.key.startswith("llm-magics-")
    again = prompt_cache_for(c, ["Q: three", "Q: four"], {"system": "rules " * 500})
    other = prompt_cache_for(c, ["Q: one", "Q: two"], {"system": "other rules"})
    assert again is not None and other is not None
    assert again.key == hint.key and other.key != hint.key  # the shared part names the cache


def test_anthropic_gets_a_breakpoint_only_when_the_shared_part_is_long_enough() -> None:
    sonnet = lm.client("anthropic:claude-sonnet-4-5", api_key=KEY)
    haiku = lm.client("anthropic:claude-haiku-4-5", api_key=KEY)
    long_system = {"system": "Follow every rule below carefully. " * 200}  # ~1,400 tokens
    prompts = ["Review: a", "Review: b"]
    assert prompt_cache_for(sonnet, prompts, long_system).breakpoint  # type: ignore[union-attr]
    # Haiku 4.5 caches prefixes of 4,096 tokens and more only.
    assert not prompt_cache_for(haiku, prompts, long_system).breakpoint  # type: ignore[union-attr]
    assert not prompt_cache_for(sonnet, prompts, {"system": "short"}).breakpoint  # type: ignore[union-attr]


def test_a_vendor_without_a_prompt_cache_gets_no_hint() -> None:
    assert prompt_cache_for(lm.client("local"), ["a b", "a c"], {}) is None
