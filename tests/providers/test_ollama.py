"""Wire conformance of the Ollama provider through the public API: every request body is
validated against Ollama's official OpenAPI file by SpecTransport, and every response and NDJSON
stream line the tests answer with is schema-valid too. Connection refused is tested for real,
against a closed local port."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Mapping
from typing import Any

import httpx2
import pytest
from pydantic import BaseModel

import llm_magics as lm
from llm_magics._core.types import MediaPart
from llm_magics._runtime.retry import RetryPolicy
from llm_magics.providers.ollama import OllamaProvider
from tests.support.faults import Chunks, Sleeps
from tests.support.specs import SpecTransport, SpecViolation, load_spec

MODEL = "llama3.2"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
STAMP = "2025-10-01T12:00:00.000000Z"

Handler = Callable[[httpx2.Request], httpx2.Response]


# --- schema-valid answers -------------------------------------------------------------------


def chat_answer(content: str = "", *, done_reason: str = "stop", **message: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "created_at": STAMP,
        "message": {"role": "assistant", "content": content, **message},
        "done": True,
        "done_reason": done_reason,
        "prompt_eval_count": 26,
        "eval_count": 9,
        "total_duration": 1000,
    }


def ndjson(lines: list[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def text_lines(pieces: list[str]) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = [
        {
            "model": MODEL,
            "created_at": STAMP,
            "message": {"role": "assistant", "content": p},
            "done": False,
        }
        for p in pieces
    ]
    lines.append(chat_answer("", done_reason="stop"))
    return lines


def streaming(body: bytes | Chunks) -> httpx2.Response:
    stream = body if isinstance(body, Chunks) else Chunks([body])
    return httpx2.Response(200, headers={"content-type": "application/x-ndjson"}, stream=stream)


def policy(retries: int = 4, sleeps: Sleeps | None = None) -> RetryPolicy:
    return RetryPolicy(max_retries=retries, sleep=sleeps or Sleeps(), random=lambda: 0.0)


def client_for(
    handler: Handler, *, retries: int = 4, sleeps: Sleeps | None = None, **options: Any
) -> tuple[lm.Client, SpecTransport]:
    transport = SpecTransport("ollama", handler)
    c = lm.client(
        f"ollama:{MODEL}",
        transport=transport,
        cache=False,
        retry=policy(retries, sleeps),
        **options,
    )
    return c, transport


def answer(content: str = "", **kw: Any) -> Handler:
    return lambda request: httpx2.Response(200, json=chat_answer(content, **kw))


def provider_for(handler: Handler) -> tuple[OllamaProvider, SpecTransport]:
    transport = SpecTransport("ollama", handler)
    c = lm.client(f"ollama:{MODEL}", transport=transport, cache=False)
    assert isinstance(c.provider, OllamaProvider)
    return c.provider, transport


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- chat -----------------------------------------------------------------------------------


def test_chat_posts_api_chat_without_streaming_and_needs_no_key() -> None:
    c, transport = client_for(answer("Paris."))
    r = c.chat("What is the capital of France?", system="Be brief.")
    transport.assert_clean()
    request = transport.requests[0]
    assert str(request.url) == "http://127.0.0.1:11434/api/chat"
    assert "authorization" not in request.headers
    assert transport.bodies[0] == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        "stream": False,
    }
    assert (str(r), r.provider, r.model, r.finish_reason) == ("Paris.", "ollama", MODEL, "stop")
    assert (r.usage.input_tokens, r.usage.output_tokens) == (26, 9)


def test_the_host_comes_from_ollama_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:11500")
    c, transport = client_for(answer("ok"))
    c.chat("hi")
    assert str(transport.requests[0].url) == "http://gpu-box:11500/api/chat"


def test_sampling_options_go_under_options() -> None:
    c, transport = client_for(answer("ok", done_reason="length"))
    r = c.chat("hi", temperature=0.1, max_tokens=30, top_p=0.9, stop=["END"], seed=4)
    transport.assert_clean()
    assert transport.bodies[0]["options"] == {
        "temperature": 0.1,
        "num_predict": 30,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 4,
    }
    assert r.finish_reason == "length"


def test_a_wrongly_typed_option_is_rejected_by_the_validator() -> None:
    # Negative control: the validator can fail on this operation.
    operation = load_spec("ollama").operation("POST", "/api/chat")
    with pytest.raises(SpecViolation, match="num_predict"):
        operation.validate_request(
            {"model": MODEL, "messages": [], "options": {"num_predict": "thirty"}}
        )


# --- streaming ------------------------------------------------------------------------------


def test_stream_reads_ndjson_deltas_that_join_to_the_text_with_usage_and_finish() -> None:
    lines = text_lines(["The capital", " is", " Paris."])
    c, transport = client_for(lambda r: streaming(ndjson(lines)))
    stream = c.stream("capital of France?")
    deltas = list(stream)
    transport.assert_clean()
    assert len(transport.stream_events) == len(lines)
    assert transport.bodies[0]["stream"] is True
    assert deltas == ["The capital", " is", " Paris."]
    assert stream.response is not None
    assert stream.response.text == "".join(deltas)
    assert stream.response.finish_reason == "stop"
    assert (stream.response.usage.input_tokens, stream.response.usage.output_tokens) == (26, 9)


def test_a_stream_cut_mid_way_raises_stream_interrupted_with_the_partial_text() -> None:
    head = ndjson(text_lines(["Once upon", " a time"])[:1])
    broken = Chunks([head], fail=httpx2.ReadError("connection reset by peer"))
    c, _ = client_for(lambda r: streaming(broken))
    with pytest.raises(lm.StreamInterruptedError) as info:
        list(c.stream("tell a story"))
    assert info.value.partial_text == "Once upon"


def test_a_stream_that_ends_without_done_is_reported_as_interrupted() -> None:
    c, _ = client_for(lambda r: streaming(ndjson(text_lines(["Once"])[:1])))
    with pytest.raises(lm.StreamInterruptedError) as info:
        list(c.stream("tell a story"))
    assert info.value.partial_text == "Once"


def test_an_error_line_mid_stream_raises_stream_interrupted() -> None:
    lines = [
        *text_lines(["Half an"])[:1],
        {"error": "an error was encountered while running the model: unexpected EOF"},
    ]
    c, transport = client_for(lambda r: streaming(ndjson(lines)))
    with pytest.raises(lm.StreamInterruptedError) as info:
        list(c.stream("hi"))
    transport.assert_clean()
    assert info.value.partial_text == "Half an"
    assert "unexpected EOF" in str(info.value)


# --- tools and structured output ------------------------------------------------------------


WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def test_tool_calls_with_object_arguments_round_trip_in_the_wire_shape() -> None:
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    replies = [chat_answer("", tool_calls=[call]), chat_answer("Sunny in Paris.")]
    c, transport = client_for(lambda r: httpx2.Response(200, json=replies.pop(0)))
    first = c.chat("Weather in Paris?", tools=[WEATHER])
    assert first.finish_reason == "tool_calls"
    [tc] = first.tool_calls
    assert (tc.name, tc.arguments) == ("get_weather", {"city": "Paris"}) and tc.id
    assert transport.bodies[0]["tools"] == [{"type": "function", "function": WEATHER}]

    history = [
        lm.Message("user", "Weather in Paris?"),
        lm.Message("assistant", "", tool_calls=first.tool_calls),
        lm.Message("tool", '{"sky": "sunny"}', tool_call_id=tc.id),
    ]
    final = c.chat(history, tools=[WEATHER])
    transport.assert_clean()
    sent = transport.bodies[1]["messages"]
    assert sent[1] == {"role": "assistant", "content": "", "tool_calls": [call]}
    assert sent[2] == {"role": "tool", "content": '{"sky": "sunny"}', "tool_name": "get_weather"}
    assert final.text == "Sunny in Paris."


class City(BaseModel):
    name: str
    population: int


def test_schema_sends_the_json_schema_as_format_and_parses_into_the_model() -> None:
    c, transport = client_for(answer('{"name": "Paris", "population": 2100000}'))
    r = c.chat("Largest city of France?", schema=City)
    transport.assert_clean()
    assert transport.bodies[0]["format"] == City.model_json_schema()
    assert r.parsed == City(name="Paris", population=2100000)


def test_json_mode_sends_format_json() -> None:
    c, transport = client_for(answer('{"ok": true}'))
    r = c.chat("status?", json_mode=True)
    transport.assert_clean()
    assert transport.bodies[0]["format"] == "json"
    assert r.parsed == {"ok": True}


# --- media ----------------------------------------------------------------------------------


def test_images_go_as_base64_strings_in_the_message() -> None:
    c, transport = client_for(answer("A cat."))
    image = MediaPart("image", "image/png", data=PNG)
    c.chat(["What is this?", image])
    transport.assert_clean()
    assert transport.bodies[0]["messages"] == [
        {"role": "user", "content": "What is this?", "images": [image.b64()]}
    ]


@pytest.mark.parametrize(
    ("part", "match"),
    [
        (MediaPart("audio", "audio/wav", data=b"RIFF0000WAVE"), "audio"),
        (MediaPart("image", "image/*", url="https://x.test/cat.jpg"), "URL"),
        (MediaPart("document", "application/pdf", data=b"%PDF-1.4"), "document"),
    ],
)
def test_media_ollama_cannot_take_is_refused_before_any_request(
    part: MediaPart, match: str
) -> None:
    c, transport = client_for(answer("never"))
    with pytest.raises(lm.ConfigError, match=match):
        c.chat(["look", part])
    assert transport.requests == []


# --- embeddings and models ------------------------------------------------------------------


def test_embed_posts_the_list_to_api_embed() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        inputs = json.loads(request.content)["input"]
        rows = [[float(len(t)), 0.5] for t in inputs]
        return httpx2.Response(
            200, json={"model": "nomic-embed-text", "embeddings": rows, "prompt_eval_count": 4}
        )

    c, transport = client_for(handler)
    assert c.embed(["ab", "abc"]) == [[2.0, 0.5], [3.0, 0.5]]
    transport.assert_clean()
    assert transport.requests[0].url.path == "/api/embed"
    assert transport.bodies[0] == {"model": "nomic-embed-text", "input": ["ab", "abc"]}


def tags(*names: str) -> dict[str, Any]:
    return {"models": [{"name": n, "model": n, "size": 1, "digest": "abc"} for n in names]}


def test_list_models_reads_api_tags() -> None:
    c, transport = client_for(
        lambda r: httpx2.Response(200, json=tags("qwen3:4b", "llama3.2:latest"))
    )
    assert c.list_models() == ["llama3.2:latest", "qwen3:4b"]
    transport.assert_clean()
    assert transport.requests[0].url.path == "/api/tags"


async def test_is_available_is_true_when_the_server_answers() -> None:
    provider, transport = provider_for(lambda r: httpx2.Response(200, json={"version": "0.12.3"}))
    assert await provider.is_available() is True
    transport.assert_clean()
    assert transport.requests[0].url.path == "/api/version"


async def test_is_available_is_false_and_never_raises_when_nothing_listens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{closed_port()}")
    provider = lm.client(f"ollama:{MODEL}", cache=False).provider
    assert isinstance(provider, OllamaProvider)
    assert await provider.is_available(timeout=2.0) is False


async def test_ensure_model_does_nothing_when_the_model_is_installed() -> None:
    provider, transport = provider_for(lambda r: httpx2.Response(200, json=tags("llama3.2:latest")))
    assert await provider.ensure_model("llama3.2") is False
    assert [r.url.path for r in transport.requests] == ["/api/tags"]


async def test_ensure_model_pulls_a_missing_model_and_reports_progress() -> None:
    events = [
        {"status": "pulling manifest"},
        {"status": "pulling dde5aa3fc5ff", "digest": "sha256:dde5", "total": 100, "completed": 50},
        {"status": "verifying sha256 digest"},
        {"status": "success"},
    ]

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/api/tags":
            return httpx2.Response(200, json=tags("qwen3:4b"))
        return streaming(ndjson(events))

    provider, transport = provider_for(handler)
    seen: list[Mapping[str, Any]] = []
    assert await provider.ensure_model("llama3.2", progress=seen.append) is True
    transport.assert_clean()
    assert transport.bodies[1] == {"model": "llama3.2", "stream": True}
    assert [e["status"] for e in seen] == [e["status"] for e in events]


async def test_ensure_model_raises_a_clear_error_when_the_pull_fails() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/api/tags":
            return httpx2.Response(200, json=tags())
        return streaming(
            ndjson(
                [
                    {"status": "pulling manifest"},
                    {"error": "pull model manifest: file does not exist"},
                ]
            )
        )

    provider, _ = provider_for(handler)
    with pytest.raises(lm.ModelNotFoundError, match="could not pull 'no-such-model'"):
        await provider.ensure_model("no-such-model")


# --- errors ---------------------------------------------------------------------------------


def test_connection_refused_says_ollama_is_not_running_and_how_to_fix_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = f"127.0.0.1:{closed_port()}"
    monkeypatch.setenv("OLLAMA_HOST", host)
    sleeps = Sleeps()
    c = lm.client(f"ollama:{MODEL}", cache=False, retry=policy(2, sleeps))
    with pytest.raises(lm.APIConnectionError) as info:
        c.chat("hi")
    message = str(info.value)
    assert f"not running at http://{host}" in message
    assert "ollama serve" in message and "OLLAMA_HOST" in message
    assert len(sleeps.delays) == 2  # connection failures are retried first


def test_a_missing_model_raises_model_not_found_with_the_pull_command() -> None:
    body = {"error": f'model "{MODEL}" not found, try pulling it first'}
    c, _ = client_for(lambda r: httpx2.Response(404, json=body))
    with pytest.raises(lm.ModelNotFoundError, match=f"ollama pull {MODEL}"):
        c.chat("hi")


def test_a_bad_request_raises_bad_request_error() -> None:
    c, _ = client_for(lambda r: httpx2.Response(400, json={"error": "invalid message format"}))
    with pytest.raises(lm.BadRequestError, match="invalid message format") as info:
        c.chat("hi")
    assert type(info.value) is lm.BadRequestError


def test_input_beyond_the_context_raises_context_length_error() -> None:
    body = {"error": "the input length exceeds the context length"}
    c, _ = client_for(lambda r: httpx2.Response(400, json=body))
    with pytest.raises(lm.ContextLengthError):
        c.embed(["a very long text"])


def test_a_429_carries_retry_after() -> None:
    c, _ = client_for(
        lambda r: httpx2.Response(
            429, json={"error": "too many requests"}, headers={"retry-after": "3"}
        ),
        retries=0,
    )
    with pytest.raises(lm.RateLimitError) as info:
        c.chat("hi")
    assert info.value.retry_after == 3.0


def test_server_errors_are_retried_with_backoff_then_succeed() -> None:
    replies = [
        httpx2.Response(500, json={"error": "llama runner process has terminated"}),
        httpx2.Response(503, json={"error": "server busy"}),
        httpx2.Response(200, json=chat_answer("finally")),
    ]
    sleeps = Sleeps()
    c, transport = client_for(lambda r: replies.pop(0), sleeps=sleeps)
    assert c.chat("hi").text == "finally"
    assert len(transport.requests) == 3 and len(sleeps.delays) == 2


def test_a_body_that_is_not_json_raises_provider_error() -> None:
    c, _ = client_for(
        lambda r: httpx2.Response(
            200, content=b"404 page not found", headers={"content-type": "text/plain"}
        )
    )
    with pytest.raises(lm.ProviderError, match="not JSON"):
        c.chat("hi")
