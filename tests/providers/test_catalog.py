"""The vendor catalog: each vendor's facts in one entry, protocol code free of vendor names,
and ``lm.register(..., like=...)`` giving a proxy the quirks of the vendor behind it."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx2
import pytest

import llm_magics as lm
from llm_magics._media.prepare import policy_for
from llm_magics.providers.catalog import VENDORS, Quirks
from tests.providers.test_openai_compat import chunk, completion, sse
from tests.support.specs import SpecTransport

PROVIDERS = Path(lm.__file__).parent / "providers"
PROTOCOL_MODULES = ["openai_compat", "anthropic", "gemini", "ollama", "local"]


@pytest.mark.parametrize("module", PROTOCOL_MODULES)
def test_protocol_code_never_compares_a_provider_name_with_a_vendor(module: str) -> None:
    vendor_names = set(VENDORS)
    files = sorted((PROVIDERS / module).rglob("*.py"))
    assert files, f"no code found for protocol {module}"
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    if isinstance(side, ast.Constant) and side.value in vendor_names:
                        pytest.fail(f"{path.name} line {node.lineno} compares with {side.value!r}")


def test_every_vendor_names_an_existing_protocol_module_and_its_key_variables() -> None:
    for vendor in VENDORS.values():
        assert (PROVIDERS / vendor.protocol / "__init__.py").is_file(), vendor.name
        assert vendor.needs_key == bool(vendor.key_envs), vendor.name


def proxy_client(like: str | None, handler, model: str = "gpt-4o-mini"):
    transport = SpecTransport("openai", handler)
    options = {"like": like} if like else {}
    lm.register(
        "openai-proxy", "https://gateway.example/v1", api_key="sk-proxy-123456789", **options
    )
    client = lm.client(f"openai-proxy:{model}", transport=transport, cache=False)
    return client, transport


def test_a_proxy_registered_like_openai_gets_openais_request_quirks() -> None:
    c, transport = proxy_client("openai", lambda r: httpx2.Response(200, json=completion()))
    c.chat("hi", max_tokens=5)
    transport.assert_clean()
    body = transport.bodies[0]
    assert body["max_completion_tokens"] == 5 and "max_tokens" not in body
    assert c.provider.media_kinds == frozenset({"image", "audio", "document"})
    assert policy_for(c.provider).max_side == VENDORS["openai"].media.max_side  # type: ignore[union-attr]
    assert policy_for(c.provider).label == "openai-proxy"


def test_a_proxy_registered_without_like_gets_the_protocols_plain_defaults() -> None:
    c, transport = proxy_client(None, lambda r: httpx2.Response(200, json=completion()))
    c.chat("hi", max_tokens=5)
    body = transport.bodies[0]
    assert body["max_tokens"] == 5 and "max_completion_tokens" not in body
    assert c.provider.media_kinds == frozenset({"image"})


def test_a_proxy_like_groq_streams_without_stream_options() -> None:
    events = [chunk({"content": "ok"}, finish="stop")]

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, content=sse(events), headers={"content-type": "text/event-stream"}
        )

    transport = SpecTransport("groq", handler)
    lm.register("groq-gw", "https://gw.example/openai/v1", api_key="sk-gw-1234567890", like="groq")
    c = lm.client("groq-gw:llama-3.3-70b-versatile", transport=transport, cache=False)
    assert "".join(c.stream("hi")) == "ok"
    assert "stream_options" not in transport.bodies[0]
    assert c.provider.default_transcribe_model() == "whisper-large-v3-turbo"


def test_openais_wire_quirks_hold_at_its_own_host_only_but_its_media_kinds_everywhere() -> None:
    openai = VENDORS["openai"]
    assert openai.quirks_at("https://api.openai.com/v1").max_tokens_field == "max_completion_tokens"
    elsewhere = openai.quirks_at("http://127.0.0.1:8080/v1")
    assert elsewhere.max_tokens_field == Quirks().max_tokens_field
    assert elsewhere.embed_encoding == "float"
    assert elsewhere.media_kinds == openai.quirks.media_kinds


def test_like_must_name_a_built_in_vendor() -> None:
    with pytest.raises(lm.ConfigError, match=r"like= names a built-in vendor .*got 'opneai'"):
        lm.register("x", "https://x.example/v1", like="opneai")


def test_like_anthropic_takes_the_anthropic_protocol_unless_told_otherwise() -> None:
    lm.register(
        "claude-gw", "https://claude-gw.example", api_key="sk-gw-1234567890", like="anthropic"
    )
    c = lm.client("claude-gw:claude-haiku-4-5")
    assert c.provider.protocol == "anthropic"
    assert policy_for(c.provider).max_side == 1568


def test_every_vendors_model_rows_carry_its_name_and_a_known_price_or_none() -> None:
    for vendor in VENDORS.values():
        assert vendor.models, f"{vendor.name} ships no model profile"
        for row in vendor.models:
            assert row.provider == vendor.name
            assert row.input is not None and row.input >= 0, row.model_id


def test_a_proxy_like_openai_bills_openais_prices_under_its_own_name() -> None:
    c, _ = proxy_client("openai", lambda r: httpx2.Response(200, json=completion()))
    answer = c.chat("hi", max_tokens=5)
    openai = lm.model_profile("openai:gpt-4o-mini")
    proxied = lm.model_profile("openai-proxy:gpt-4o-mini")
    assert openai is not None and proxied is not None
    assert (proxied.input, proxied.output) == (openai.input, openai.output)
    assert proxied.model_id == "openai-proxy:gpt-4o-mini"
    expected = openai.cost(answer.usage)
    assert expected and answer.cost == pytest.approx(expected)


def test_a_proxy_without_like_has_no_price_and_reregistering_drops_adopted_prices() -> None:
    lm.register("openai-proxy", "https://gateway.example/v1", like="openai")
    assert lm.model_profile("openai-proxy:gpt-4o") is not None
    lm.register("openai-proxy", "https://gateway.example/v1")
    assert lm.model_profile("openai-proxy:gpt-4o") is None


def test_a_users_price_wins_over_the_one_a_proxy_adopted() -> None:
    lm.register("openai-proxy", "https://gateway.example/v1", like="openai")
    lm.set_price("openai-proxy:gpt-4o", input=1.0, output=2.0)
    profile = lm.model_profile("openai-proxy:gpt-4o")
    assert profile is not None and (profile.input, profile.output, profile.source) == (
        1.0,
        2.0,
        "user",
    )
    assert profile.context_window == VENDORS["openai"].models[0].context_window
