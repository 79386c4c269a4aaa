"""The per-kernel registry: model ids, aliases, defaults, custom endpoints, key status."""

from __future__ import annotations

from pathlib import Path

import pytest

import llm_magics as lm
from llm_magics._client import registry


def reg() -> registry.Registry:
    return registry.current_registry()


def test_model_ids_split_on_the_first_colon_only() -> None:
    ref = reg().resolve("ollama:llama3.2:3b")
    assert (ref.provider, ref.model) == ("ollama", "llama3.2:3b")


def test_a_bare_provider_name_means_its_default_model() -> None:
    assert str(reg().resolve("anthropic")) == "anthropic:claude-haiku-4-5"
    assert str(reg().resolve("local")) == "local"


def test_with_no_key_configured_the_default_model_is_local() -> None:
    assert reg().default_model() == "local"


def test_the_first_configured_provider_becomes_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk-test-123456789")
    assert reg().default_model() == "groq:llama-3.3-70b-versatile"
    monkeypatch.setenv("LLM_MAGICS_DEFAULT_MODEL", "cerebras:llama3.1-8b")
    assert reg().default_model() == "cerebras:llama3.1-8b"
    lm.use("anthropic:claude-sonnet-4-5")
    assert reg().default_model() == "anthropic:claude-sonnet-4-5"


def test_keys_and_defaults_are_read_from_dotenv_without_overriding_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text(
        "GEMINI_API_KEY=AIza-from-dotenv-123456\nOPENAI_API_KEY=from-dotenv\n"
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-environment-1234")
    monkeypatch.chdir(project)
    c = lm.client("gemini:gemini-2.5-flash") if _has_gemini() else None
    from llm_magics.providers.catalog import VENDORS, keys_from_env

    assert keys_from_env(VENDORS["gemini"]) == (
        ["AIza-from-dotenv-123456"],
        "GEMINI_API_KEY",
    )
    assert keys_from_env(VENDORS["openai"]) == (
        ["sk-from-environment-1234"],
        "OPENAI_API_KEY",
    )
    if c is not None:
        assert c.keys is not None and len(c.keys) == 1


def _has_gemini() -> bool:
    import importlib.util

    return importlib.util.find_spec("llm_magics.providers.gemini") is not None


def test_a_key_pool_variable_wins_over_the_single_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk-single-00000000")
    monkeypatch.setenv("GROQ_API_KEYS", "gsk-a-11111111, gsk-b-22222222,gsk-a-11111111")
    pool = reg().key_pool("groq")
    assert pool is not None and len(pool) == 2
    assert reg().key_pool("groq") is pool, "the pool (and its rate-limit state) is shared"


def test_google_api_key_is_accepted_for_gemini(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-google-key-0000")
    from llm_magics.providers.catalog import VENDORS, keys_from_env

    assert keys_from_env(VENDORS["gemini"]) == (
        ["AIza-google-key-0000"],
        "GOOGLE_API_KEY",
    )


def test_aliases_resolve_and_bad_aliases_fail_at_definition() -> None:
    lm.alias("fast", "groq:llama-3.3-70b-versatile")
    assert str(reg().resolve("fast")) == "groq:llama-3.3-70b-versatile"
    with pytest.raises(lm.UnknownModelError, match="unknown provider 'nope'"):
        lm.alias("broken", "nope:model")
    with pytest.raises(lm.ConfigError):
        lm.alias("with:colon", "local")


def test_unknown_models_get_a_message_that_says_how_to_write_one() -> None:
    with pytest.raises(lm.UnknownModelError) as info:
        lm.client("gpt-4o")
    assert "provider:model" in str(info.value) and "openai:gpt-4o-mini" in str(info.value)
    with pytest.raises(lm.UnknownModelError, match="names no model"):
        reg().resolve("openai:")


def test_registered_servers_are_reachable_by_name_with_their_key_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lm.register("vllm", "http://127.0.0.1:8000/v1", api_key_env="VLLM_KEY")
    with pytest.raises(lm.ConfigError, match="VLLM_KEY"):
        lm.client("vllm:qwen")
    monkeypatch.setenv("VLLM_KEY", "token-abcdefgh")
    c = lm.client("vllm:qwen")
    assert c.provider.base_url == "http://127.0.0.1:8000/v1" and c.model == "qwen"
    lm.register("keyless", "http://127.0.0.1:8001/v1")
    assert lm.client("keyless:m").keys is None


@pytest.mark.parametrize(
    ("name", "url", "fix"),
    [
        ("openai", "http://x", "built-in"),
        ("a:b", "http://x", "no ':'"),
        ("ok", "localhost:8000", "http://"),
    ],
)
def test_register_rejects_bad_names_and_urls(name: str, url: str, fix: str) -> None:
    with pytest.raises(lm.ConfigError, match=fix):
        lm.register(name, url)


def test_provider_listing_shows_key_status_but_never_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "sk-very-secret-value-9876"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    rows = {r["provider"]: r for r in reg().providers()}
    assert rows["openai"]["key"].startswith("configured")
    assert rows["anthropic"]["key"] == "missing (set ANTHROPIC_API_KEY)"
    assert rows["local"]["key"] == "no key needed"
    assert secret not in repr(rows)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "http://127.0.0.1:11434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("myhost:12345", "http://myhost:12345"),
        ("https://ollama.example.org", "https://ollama.example.org:11434"),
        ("http://10.0.0.5:8080/", "http://10.0.0.5:8080"),
    ],
)
def test_ollama_host_follows_ollamas_own_convention(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    from llm_magics.providers.catalog import VENDORS

    monkeypatch.setenv("OLLAMA_HOST", value)
    assert VENDORS["ollama"].base_url() == expected


def test_an_alias_cycle_is_refused_when_made_naming_the_cycle() -> None:
    r = reg()
    r.alias("fast", "openai:gpt-4o-mini")
    r.alias("quick", "fast")
    with pytest.raises(lm.ConfigError, match=r"fast -> quick -> fast"):
        r.alias("fast", "quick")
    with pytest.raises(lm.ConfigError, match="cycle"):
        r.alias("self", "self")
    assert r.resolve("quick").model == "gpt-4o-mini", "the aliases that were made still work"


def test_provider_of_takes_a_provider_an_alias_or_a_model_id() -> None:
    r = reg()
    r.alias("fast", "groq:llama-3.1-8b-instant")
    assert r.provider_of("openai") == "openai"
    assert r.provider_of("anthropic:claude-haiku-4-5") == "anthropic"
    assert r.provider_of("fast") == "groq"
    assert r.provider_of(None) == "local", "no key: the default model's provider"
    with pytest.raises(lm.UnknownModelError, match="unknown model 'nope'"):
        r.provider_of("nope")


def test_list_models_asks_the_providers_api_with_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.magics_helpers import KEY, FakeOpenAI, FakeRegistry

    backend = FakeOpenAI()
    r = FakeRegistry(backend.transport)
    with pytest.raises(lm.ConfigError, match="set OPENAI_API_KEY"):
        r.list_models("openai")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert r.list_models("openai:gpt-4o") == ["gpt-a", "gpt-b"]
    (sent,) = [b for b in backend.transport.requests if b.url.path.endswith("/models")]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
