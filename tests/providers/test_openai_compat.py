"""Wire conformance of the OpenAI-compatible provider (OpenAI, Groq, Cerebras, custom servers):
every request body is validated against the provider's own published spec by SpecTransport,
and every response and stream event the tests feed back is schema-valid too."""

from __future__ import annotations

import array
import base64
import json
from typing import Any

import httpx2
import pytest
from pydantic import BaseModel

import llm_magics as lm
from llm_magics._core.types import MediaPart
from tests.support.specs import SpecTransport

KEY = "sk-test-0123456789abcdefWXYZ"


def completion(
    text: str | None = "Hello!",
    *,
    model: str = "gpt-4o-mini",
    minimal: bool = False,
    **message: Any,
) -> dict[str, Any]:
    """A chat completion as the spec describes it; ``minimal`` leaves out OpenAI-only fields
    that Groq's and Cerebras' specs do not allow."""
    if minimal:
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "system_fingerprint": "fp_1",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        }
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None, **message},
                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 3,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    }


def chunk(
    delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    choices = (
        [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
    )
    out: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": choices,
    }
    if usage:
        out["usage"] = usage
    return out


def sse(events: list[dict[str, Any]]) -> bytes:
    lines = [f"data: {json.dumps(e)}\n\n" for e in events]
    return ("".join(lines) + "data: [DONE]\n\n").encode()


def client_for(
    provider: str, handler: Any, model: str = "gpt-4o-mini", **options: Any
) -> tuple[lm.Client, SpecTransport]:
    transport = SpecTransport(provider, handler)
    return lm.client(
        f"{provider}:{model}", api_key=KEY, transport=transport, cache=False, **options
    ), transport


def test_chat_sends_a_spec_valid_body_and_parses_text_usage_and_finish_reason() -> None:
    c, transport = client_for("openai", lambda r: httpx2.Response(200, json=completion("Paris.")))
    r = c.chat("What is the capital of France?", system="Be brief.", temperature=0, max_tokens=20)
    transport.assert_clean()
    body = transport.bodies[0]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    assert body["max_completion_tokens"] == 20 and body["temperature"] == 0
    request = transport.requests[0]
    assert request.url.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert str(r) == r.text == "Paris."
    assert (r.provider, r.model, r.finish_reason) == ("openai", "gpt-4o-mini", "stop")
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.cached_input_tokens) == (12, 3, 4)
    assert r.latency is not None and r.latency >= 0


def test_raw_is_the_decoded_body_and_the_body_is_kept_as_its_json_text() -> None:
    from llm_magics._core.types import raw_json_of

    body = completion("Paris.")
    c, _ = client_for("openai", lambda r: httpx2.Response(200, json=body))
    r = c.chat("Capital of France?")
    assert r.raw == body
    text = raw_json_of(r)
    assert text is not None and json.loads(text) == body  # what the cache stores as raw
    r.raw = {"replaced": True}  # e.g. the tool loop wrapping it
    assert raw_json_of(r) is None and r.raw == {"replaced": True}


@pytest.mark.parametrize(
    ("provider", "model", "path", "max_field"),
    [
        ("groq", "llama-3.3-70b-versatile", "/openai/v1/chat/completions", "max_tokens"),
        ("cerebras", "llama3.1-8b", "/v1/chat/completions", "max_tokens"),
    ],
)
def test_groq_and_cerebras_speak_the_same_protocol_at_their_own_base_urls(
    provider: str, model: str, path: str, max_field: str
) -> None:
    c, transport = client_for(
        provider,
        lambda r: httpx2.Response(200, json=completion("ok", model=model, minimal=True)),
        model,
    )
    r = c.chat("hi", max_tokens=5, stop="END", seed=7)
    transport.assert_clean()
    assert transport.requests[0].url.path == path
    assert transport.bodies[0][max_field] == 5
    assert transport.bodies[0]["stop"] == ["END"]
    assert r.text == "ok" and r.provider == provider


def test_base_url_comes_from_the_environment_like_the_official_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/custom/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        return httpx2.Response(200, json=completion())

    c = lm.client("openai:gpt-4o-mini", transport=httpx2.MockTransport(handler), cache=False)
    c.chat("hi")
    assert seen == ["http://127.0.0.1:9/custom/v1/chat/completions"]


def test_stream_yields_deltas_that_join_to_the_text_and_ends_with_usage() -> None:
    events = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "The capital"}),
        chunk({"content": " is"}),
        chunk({"content": " Paris."}, finish="stop"),
        chunk({}, usage={"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}),
    ]

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, content=sse(events), headers={"content-type": "text/event-stream"}
        )

    c, transport = client_for("openai", handler)
    stream = c.stream("capital of France?")
    deltas = list(stream)
    transport.assert_clean()
    assert deltas == ["The capital", " is", " Paris."]
    assert transport.bodies[0]["stream"] is True
    assert transport.bodies[0]["stream_options"] == {"include_usage": True}
    assert stream.response is not None
    assert stream.response.text == "The capital is Paris."
    assert stream.response.finish_reason == "stop"
    assert (stream.response.usage.input_tokens, stream.response.usage.output_tokens) == (9, 4)


def test_groq_streams_without_stream_options_and_reads_usage_from_x_groq() -> None:
    final = chunk({}, finish="stop")
    final["x_groq"] = {
        "id": "req_1",
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    events = [chunk({"role": "assistant", "content": "Hi"}), chunk({"content": " there"}), final]

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, content=sse(events), headers={"content-type": "text/event-stream"}
        )

    c, transport = client_for("groq", handler, "llama-3.3-70b-versatile")
    stream = c.stream("hello")
    assert "".join(stream) == "Hi there"
    transport.assert_clean()
    assert "stream_options" not in transport.bodies[0]
    assert stream.response is not None
    assert (stream.response.usage.input_tokens, stream.response.usage.output_tokens) == (5, 2)


async def test_async_stream_works_on_the_callers_own_event_loop() -> None:
    events = [chunk({"content": "a"}), chunk({"content": "b"}, finish="stop")]
    c, _ = client_for(
        "openai",
        lambda r: httpx2.Response(
            200, content=sse(events), headers={"content-type": "text/event-stream"}
        ),
    )
    stream = c.astream("x")
    assert [d async for d in stream] == ["a", "b"]
    assert stream.response is not None and stream.response.text == "ab"


def test_tool_calls_are_parsed_and_tool_results_go_back_in_the_wire_shape() -> None:
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    replies = iter([completion(None, tool_calls=calls), completion("It is sunny.")])
    c, transport = client_for("openai", lambda r: httpx2.Response(200, json=next(replies)))

    def get_weather(city: str, unit: str = "celsius") -> str:
        """Current weather for a city."""
        return "sunny"

    first = c.chat("Weather in Paris?", tools=[get_weather], tool_choice="auto")
    assert first.finish_reason == "tool_calls"
    assert first.tool_calls == [
        lm.ToolCall("call_1", "get_weather", {"city": "Paris"}, '{"city": "Paris"}')
    ]
    sent_tool = transport.bodies[0]["tools"][0]["function"]
    assert sent_tool["name"] == "get_weather"
    assert sent_tool["description"] == "Current weather for a city."
    assert sent_tool["parameters"]["required"] == ["city"]

    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    second = c.chat(history, tools=[get_weather])
    transport.assert_clean()
    sent = transport.bodies[1]["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    assert second.text == "It is sunny."


class City(BaseModel):
    name: str
    population: int


def test_schema_sends_json_schema_response_format_and_parses_into_the_model() -> None:
    c, transport = client_for(
        "openai",
        lambda r: httpx2.Response(200, json=completion('{"name": "Paris", "population": 2100000}')),
    )
    r = c.chat("Largest city of France?", schema=City)
    transport.assert_clean()
    fmt = transport.bodies[0]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "City"
    assert fmt["json_schema"]["schema"]["required"] == ["name", "population"]
    assert r.parsed == City(name="Paris", population=2100000)


LLAMA_CPP_REFUSAL = (
    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', "
    "'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}"
)


def llama_cpp_like(request: httpx2.Request) -> httpx2.Response:
    """What llama_cpp.server 0.3.36 answers (a real one is in test_llama_server.py)."""
    body = json.loads(request.content)
    if body.get("response_format", {}).get("type") == "json_schema":
        error = {"message": LLAMA_CPP_REFUSAL, "type": "internal_server_error"}
        return httpx2.Response(500, json={"error": {**error, "param": None, "code": None}})
    answer = '{"city": "Paris", "country": "France"}'
    if body.get("stream"):
        events = [chunk({"role": "assistant", "content": answer}), chunk({}, "stop")]
        headers = {"content-type": "text/event-stream"}
        return httpx2.Response(200, content=sse(events), headers=headers)
    return httpx2.Response(200, json=completion(answer))


@pytest.mark.parametrize("streamed", [False, True])
def test_a_server_that_takes_schemas_only_in_json_object_gets_them_there(streamed: bool) -> None:
    class City(BaseModel):
        city: str
        country: str

    lm.register("llamacpp", "http://llama.test/v1")
    transport = SpecTransport("openai", llama_cpp_like)
    c = lm.client("llamacpp:smollm2", transport=transport, cache=False)
    if streamed:
        stream = c.stream("Capital of France?", schema=City)
        assert "Paris" in "".join(stream)
        assert stream.response is not None
        c.chat("Capital of Italy?", schema=City)
    else:
        assert c.chat("Capital of France?", schema=City).parsed == City(
            city="Paris", country="France"
        )
        c.chat("Capital of Italy?", schema=City)
    formats = [body["response_format"] for body in transport.bodies]
    assert formats[0]["type"] == "json_schema"
    assert formats[1:] == [{"type": "json_object", "schema": City.model_json_schema()}] * 2


def test_other_server_errors_do_not_change_how_schemas_are_sent() -> None:
    class City(BaseModel):
        city: str

    def failing(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(500, json={"error": {"message": "out of memory"}})

    lm.register("flaky", "http://flaky.test/v1")
    from llm_magics._runtime.retry import RetryPolicy

    c = lm.client(
        "flaky:m", transport=httpx2.MockTransport(failing), cache=False, retry=RetryPolicy(0)
    )
    with pytest.raises(lm.ProviderError):
        c.chat("x", schema=City)
    assert c.provider.schema_in_json_object is False  # type: ignore[attr-defined]


def test_schema_answer_that_does_not_parse_raises_output_parse_error_with_the_text() -> None:
    c, _ = client_for(
        "openai", lambda r: httpx2.Response(200, json=completion("Paris, about 2 million"))
    )
    with pytest.raises(lm.OutputParseError) as info:
        c.chat("Largest city?", schema=City)
    assert info.value.text == "Paris, about 2 million"
    assert "City" in str(info.value)


def test_json_mode_sends_json_object_and_parses_the_answer() -> None:
    c, transport = client_for(
        "openai", lambda r: httpx2.Response(200, json=completion('{"ok": true}'))
    )
    r = c.chat("Answer in JSON", json_mode=True)
    transport.assert_clean()
    assert transport.bodies[0]["response_format"] == {"type": "json_object"}
    assert r.parsed == {"ok": True}


def test_embeddings_request_base64_and_decode_float32_vectors() -> None:
    vectors = [[0.25, -1.5, 3.0], [1.0, 0.0, -0.125]]

    def handler(request: httpx2.Request) -> httpx2.Response:
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(array.array("f", v).tobytes()).decode(),
            }
            for i, v in reversed(list(enumerate(vectors)))
        ]
        return httpx2.Response(
            200,
            json={
                "object": "list",
                "data": data,
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 4, "total_tokens": 4},
            },
        )

    # OpenAI's spec types `embedding` as an array only, though the API answers a base64 string
    # when asked for encoding_format=base64 (what the official SDK does): the request is still
    # validated; the response cannot be.
    transport = SpecTransport("openai", handler, validate_responses=False)
    c = lm.client("openai:gpt-4o-mini", api_key=KEY, transport=transport)
    assert c.embed(["a", "b"]) == vectors
    transport.assert_clean()
    assert transport.bodies[0] == {
        "model": "text-embedding-3-small",
        "input": ["a", "b"],
        "encoding_format": "base64",
    }
    assert transport.requests[0].url.path == "/v1/embeddings"


def test_list_models_reads_the_models_endpoint() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200,
            json={
                "object": "list",
                "data": [
                    {"id": "gpt-4o", "object": "model", "created": 1, "owned_by": "openai"},
                    {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "openai"},
                ],
            },
        )

    c, transport = client_for("openai", handler)
    assert c.list_models() == ["gpt-4o", "gpt-4o-mini"]
    transport.assert_clean()


PNG_1x1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def test_image_parts_are_sent_as_data_urls_and_remote_urls_pass_through() -> None:
    c, transport = client_for("openai", lambda r: httpx2.Response(200, json=completion("a dot")))
    c.chat(
        [
            "What is this?",
            MediaPart("image", "image/png", data=PNG_1x1),
            MediaPart("image", "image/*", url="https://example.org/cat.jpg"),
        ]
    )
    transport.assert_clean()
    content = transport.bodies[0]["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    assert content[2]["image_url"]["url"] == "https://example.org/cat.jpg"


def test_a_provider_that_cannot_take_images_refuses_before_sending_anything() -> None:
    c, transport = client_for(
        "cerebras", lambda r: httpx2.Response(200, json=completion(minimal=True)), "llama3.1-8b"
    )
    with pytest.raises(lm.ConfigError, match="cerebras does not support image input"):
        c.chat(["Describe", MediaPart("image", "image/png", data=PNG_1x1)])
    assert transport.requests == []


def test_negative_control_a_broken_body_is_rejected_by_the_validator() -> None:
    # Proves the conformance tests above can fail: a body the spec forbids is caught.
    c, transport = client_for(
        "openai", lambda r: httpx2.Response(200, json=completion()), max_retries=0
    )
    with pytest.raises(lm.ProviderError):
        c.chat("hi", extra_body={"messages": "not a list"})  # overrides the real messages
    assert transport.violations, "the validator accepted a body with messages as a string"
    assert "messages" in str(transport.violations[0])


def test_an_error_object_mid_stream_raises_stream_interrupted_keeping_the_text() -> None:
    events = [
        chunk({"content": "Half an"}),
        {"error": {"message": "upstream model crashed", "type": "server_error", "code": None}},
    ]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode()
    # The error object is not a chunk, so only the request is validated here.
    transport = SpecTransport(
        "openai",
        lambda r: httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"}),
        validate_responses=False,
    )
    c = lm.client("openai:gpt-4o-mini", api_key=KEY, transport=transport, cache=False)
    with pytest.raises(lm.StreamInterruptedError, match="upstream model crashed") as info:
        list(c.stream("hi"))
    transport.assert_clean()
    assert info.value.partial_text == "Half an"
    assert len(transport.requests) == 1, "a stream that delivered text is not restarted"


@pytest.mark.parametrize(
    ("base_url", "field"),
    [
        ("https://api.openai.com/v1", "max_completion_tokens"),
        ("http://127.0.0.1:8080/v1", "max_tokens"),
        ("https://my-proxy.example/v1", "max_tokens"),
    ],
)
def test_openai_sends_max_completion_tokens_only_to_openai_itself(
    base_url: str, field: str
) -> None:
    transport = SpecTransport("openai", lambda r: httpx2.Response(200, json=completion()))
    c = lm.client(
        "openai:gpt-4o-mini", api_key="sk-test-123456789", base_url=base_url,
        transport=transport, cache=False,
    )  # fmt: skip
    c.chat("hi", max_tokens=5)
    transport.assert_clean()
    body = transport.bodies[0]
    assert body[field] == 5 and len({"max_tokens", "max_completion_tokens"} & set(body)) == 1
