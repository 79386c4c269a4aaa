"""No API key anywhere: not in an error a server echoes it into, not in the request an error
keeps, not in a pickle, not in a verbose traceback. Cases 1-3 of the hardening issue.

Each provider's own key header is used (Authorization, x-api-key, x-goog-api-key), against
a server that quotes every request header back in its 400 body, as some proxies do."""

from __future__ import annotations

import json
import pickle
from typing import Any

import httpx2
import pytest

import llm_magics as lm
from llm_magics._core.secrets import SecretHeaders, masked_request, scrub
from llm_magics._runtime.retry import RetryPolicy

KEYS = {
    "openai": "sk-echoed-openai-key-0123456789abcdWXYZ",
    "anthropic": "sk-ant-TEST_echoed_anthropic_key_ABCD",
    "gemini": "AIza.TEST.echoed.gemini.key.GHIJ",
}
MODELS = {"openai": "openai:m", "anthropic": "anthropic:claude-x", "gemini": "gemini:gemini-x"}


def echoing(request: httpx2.Request) -> httpx2.Response:
    """A proxy that quotes the request's headers in its error message."""
    quoted = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
    body = {"error": {"message": f"bad request, you sent {quoted}", "type": "invalid"}}
    return httpx2.Response(400, json=body, headers={"x-echo": quoted})


def client_for(provider: str, handler: Any = echoing) -> lm.Client:
    return lm.client(
        MODELS[provider],
        api_key=KEYS[provider],
        transport=httpx2.MockTransport(handler),
        cache=False,
        retry=RetryPolicy(max_retries=0),
    )


def everything_about(exc: BaseException) -> str:
    """Every text an error carries, down its cause chain: message, repr, attributes, the
    kept request and response (headers and bodies), and its pickle."""
    seen = []
    current: BaseException | None = exc
    while current is not None:
        seen += [str(current), repr(current), repr(vars(current))]
        for name in ("request", "response"):
            obj = getattr(current, name, None) if name in vars(current) else None
            if obj is None:
                obj = getattr(current, "_" + name, None)
            if obj is not None:
                seen += [repr(dict(obj.headers)), repr(obj.headers)]
                seen.append(obj.content.decode("utf-8", "replace"))
                if name == "response":
                    seen.append(obj.text)
                    seen += [repr(dict(obj.request.headers))]
        current = current.__cause__ or current.__context__
    seen.append(pickle.dumps(exc).decode("latin-1"))
    return "\n".join(seen)


@pytest.mark.parametrize("provider", sorted(KEYS))
def test_a_key_echoed_by_the_server_is_masked_in_every_part_of_the_error(provider: str) -> None:
    key = KEYS[provider]
    with pytest.raises(lm.BadRequestError) as info:
        client_for(provider).chat("hi")
    text = everything_about(info.value)
    assert key not in text
    assert key[:-4] not in text, "not even the key without its last four characters"
    assert f"...{key[-4:]}" in str(info.value), "the message still shows which key it was"


@pytest.mark.parametrize("provider", sorted(KEYS))
def test_the_request_kept_on_an_error_has_its_key_header_masked(provider: str) -> None:
    with pytest.raises(lm.ProviderError) as info:
        client_for(provider).chat("hi")
    headers = dict(info.value.request.headers)
    assert not any(KEYS[provider] in value for value in headers.values())
    assert any(value.endswith(KEYS[provider][-4:]) for value in headers.values())
    again = pickle.loads(pickle.dumps(info.value))
    assert KEYS[provider] not in repr(dict(again.request.headers))


def test_a_transport_error_keeps_no_key_in_its_cause() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError(f"refused {request.headers['authorization']}", request=request)

    with pytest.raises(lm.APIConnectionError) as info:
        client_for("openai", refuse).chat("hi")
    assert isinstance(info.value.__cause__, httpx2.ConnectError)
    text = everything_about(info.value)
    assert KEYS["openai"] not in text


def test_headers_print_masked_so_verbose_tracebacks_show_no_key() -> None:
    headers = SecretHeaders({"Authorization": f"Bearer {KEYS['openai']}", "Accept": "json"})
    assert KEYS["openai"] not in repr(headers)
    assert "Bearer ...WXYZ" in repr(headers)
    assert headers["Authorization"].endswith(KEYS["openai"]), "the real value is still sent"


def test_verbose_traceback_of_a_python_api_error_shows_no_key() -> None:
    # %xmode Verbose prints every frame's locals, the HTTP boundary's headers included.
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.user_ns["client"] = client_for("openai")
    shell.run_line_magic("xmode", "Verbose")
    try:
        result = shell.run_cell("client.chat('hi')")
        assert isinstance(result.error_in_exec, lm.BadRequestError)
        etype, value, tb = type(result.error_in_exec), result.error_in_exec, None
        tb = result.error_in_exec.__traceback__
        text = "\n".join(shell.InteractiveTB.structured_traceback(etype, value, tb))
    finally:
        shell.run_line_magic("xmode", "Context")
    assert "headers" in text, "the verbose traceback shows the boundary's locals"
    assert KEYS["openai"] not in text


def test_scrub_masks_every_key_the_package_holds_and_leaves_other_text_alone() -> None:
    lm.client("openai:m", api_key="sk-registered-in-a-pool-7777", cache=False)
    assert scrub("x sk-registered-in-a-pool-7777 y") == "x ...7777 y"
    assert scrub("nothing secret here") == "nothing secret here"


def test_masked_request_is_a_copy_and_the_original_is_untouched() -> None:
    original = httpx2.Request("POST", "https://x", headers={"x-api-key": KEYS["anthropic"]})
    masked = masked_request(original)
    assert masked.headers["x-api-key"] == "...ABCD"
    assert original.headers["x-api-key"] == KEYS["anthropic"]


def test_an_error_stream_event_echoing_the_key_is_masked() -> None:
    key = KEYS["openai"]
    event = {"error": {"message": f"upstream said: key {key} is over quota", "type": "x"}}
    body = f"data: {json.dumps(event)}\n\n".encode()

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    with pytest.raises(lm.LLMError) as info:
        list(client_for("openai", handler).stream("hi"))
    assert key not in everything_about(info.value)


def test_a_placeholder_key_is_not_scrubbed_out_of_ordinary_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LMSTUDIO_API_KEY", "lm-studio")
    assert scrub("connect to lm-studio on port 1234") == "connect to lm-studio on port 1234"


def test_a_streaming_request_sends_masked_printing_headers() -> None:
    from llm_magics.providers.openai_compat import OpenAICompatProvider

    provider = OpenAICompatProvider("openai", "https://api.openai.com/v1")
    from llm_magics._core.secrets import APIKey

    headers = SecretHeaders(provider.headers(APIKey(KEYS["openai"])), Accept="text/event-stream")
    assert KEYS["openai"] not in repr(headers) and headers["Accept"] == "text/event-stream"
