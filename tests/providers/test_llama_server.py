"""The OpenAI-compatible provider against a real server nobody here wrote: llama-cpp-python's
``llama_cpp.server`` for the embedded GGUF, started with :func:`llm_magics.serve_local` (the
``llama_server`` and ``forward`` fixtures of tests/support/llama.py, one server per run).

Every request body we send is validated against OpenAI's published spec on the way (a
SpecTransport whose handler forwards to the real server). Responses are the server's own and
are not held to OpenAI's spec: llama.cpp leaves out fields OpenAI requires (``refusal``, ...)
and our provider must cope with what it really sends.
"""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterator

import httpx2
import pytest
from pydantic import BaseModel

import llm_magics as lm
from llm_magics._local.serve import LocalServer
from llm_magics._runtime.retry import RetryPolicy
from tests.support.llama import Forward
from tests.support.specs import SpecTransport

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None
        or importlib.util.find_spec("uvicorn") is None,
        reason="the [local] extra (llama-cpp-python[server]) is not installed",
    ),
]


class City(BaseModel):
    city: str
    country: str


@pytest.fixture
def transport(forward: Forward) -> Iterator[SpecTransport]:
    spec_transport = SpecTransport("openai", forward, validate_responses=False)
    yield spec_transport
    spec_transport.assert_clean()


@pytest.fixture
def client(llama_server: LocalServer, transport: SpecTransport) -> lm.Client:
    lm.register("llamacpp", base_url=llama_server.base_url)
    return lm.client(f"llamacpp:{llama_server.model}", transport=transport, cache=False)


def test_the_validator_rejects_a_body_the_spec_forbids(llama_server: LocalServer) -> None:
    transport = SpecTransport("openai", Forward(), validate_responses=False)
    with httpx2.Client(transport=transport) as http:
        answer = http.post(f"{llama_server.base_url}/chat/completions", json={"model": "x"})
    assert answer.status_code == 599
    assert "messages" in transport.violations[0].message


def test_chat(client: lm.Client, transport: SpecTransport) -> None:
    r = client.chat(
        "What is the capital of France?", system="Answer concisely.", temperature=0, max_tokens=24
    )
    assert "Paris" in r.text
    assert r.model == "smollm2" and r.provider == "llamacpp"
    assert r.usage.input_tokens > 5 and 0 < r.usage.output_tokens <= 24
    sent = transport.bodies[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Answer concisely."}
    assert sent["max_tokens"] == 24 and sent["temperature"] == 0


def test_streaming(client: lm.Client, transport: SpecTransport) -> None:
    stream = client.stream(
        "What is the capital of France?", system="Answer concisely.", temperature=0, max_tokens=24
    )
    deltas = list(stream)
    assert len(deltas) >= 3
    assert stream.response is not None
    assert "".join(deltas) == stream.response.text
    assert "Paris" in stream.response.text
    assert stream.response.finish_reason == "stop"
    assert transport.bodies[-1]["stream"] is True


def test_json_mode(client: lm.Client, transport: SpecTransport) -> None:
    r = client.chat(
        "Give the capital of France as JSON with keys city and country.",
        json_mode=True,
        temperature=0,
        max_tokens=40,
    )
    assert isinstance(r.parsed, dict)
    assert transport.bodies[-1]["response_format"] == {"type": "json_object"}


def test_a_schema_through_llama_cpps_json_object_extension(
    client: lm.Client, transport: SpecTransport
) -> None:
    # llama.cpp takes the schema inside a json_object response_format and builds a grammar.
    r = client.chat(
        "What is the capital of France? Answer with the city and its country.",
        schema=City,
        extra_body={"response_format": {"type": "json_object", "schema": City.model_json_schema()}},
        temperature=0,
        max_tokens=40,
    )
    assert isinstance(r.parsed, City)
    assert r.parsed.city == "Paris"


def test_a_schema_as_openai_structured_output_falls_back_to_llama_cpps_form(
    llama_server: LocalServer,
) -> None:
    # llama_cpp.server 0.3.36 refuses response_format json_schema (HTTP 500, "Input should
    # be 'text' or 'json_object'"); the provider then sends the schema inside json_object.
    lm.register("llamacpp", base_url=llama_server.base_url)
    client = lm.client("llamacpp:smollm2", cache=False, retry=RetryPolicy(max_retries=0))
    r = client.chat("The capital of France, as city and country.", schema=City, max_tokens=40)
    assert isinstance(r.parsed, City)


def test_list_models(client: lm.Client) -> None:
    assert client.list_models() == ["smollm2"]


def test_serve_local_on_a_busy_port_quotes_the_server_log() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(lm.ConfigError, match=r"exited with code") as caught:
            lm.serve_local(port=port, timeout=120)
    assert "address already in use" in str(caught.value).lower()


def test_openai_base_url_at_llama_cpp_keeps_max_tokens_honoured(
    llama_server: LocalServer, transport: SpecTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Case 12 of the hardening issue: sent as max_completion_tokens, which llama.cpp ignores,
    # max_tokens=5 used to give 2,026 tokens in 33 s.
    monkeypatch.setenv("OPENAI_BASE_URL", llama_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-checked-by-llama-cpp")
    client = lm.client(f"openai:{llama_server.model}", transport=transport, cache=False)
    r = client.chat("Count from one to one hundred.", temperature=0, max_tokens=5)
    assert transport.bodies[-1]["max_tokens"] == 5
    assert "max_completion_tokens" not in transport.bodies[-1]
    assert 0 < r.usage.output_tokens <= 5
