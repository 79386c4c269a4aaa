"""Wire conformance of the Anthropic provider through the public API: every request body is
validated against Anthropic's published spec by SpecTransport (which forbids unknown fields),
and every response, error body and stream event the tests answer with is schema-valid too."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from pydantic import BaseModel

import llm_magics as lm
from llm_magics._core.types import MediaPart
from llm_magics._runtime.retry import RetryPolicy
from tests.support.faults import Chunks, Sleeps
from tests.support.specs import SpecTransport, SpecViolation, load_spec

KEY = "test-anthropic-key-0123456789WXYZ"  # a sentinel, shaped unlike a real key
MODEL = "claude-haiku-4-5"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PDF = b"%PDF-1.4\n%fake\n"

Handler = Callable[[httpx2.Request], httpx2.Response]


# --- schema-valid answers -------------------------------------------------------------------


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "citations": None}


def tool_use(id: str, name: str, input: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": id,
        "name": name,
        "input": input,
        "caller": {"type": "direct"},
    }


def usage(input: int = 10, output: int = 5, **extra: Any) -> dict[str, Any]:
    return {"input_tokens": input, "output_tokens": output, **extra}


def message(
    content: list[dict[str, Any]], stop: str = "end_turn", **usage_extra: Any
) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage(**usage_extra),
    }


def error_body(kind: str, text: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": text}, "request_id": "req_01"}


def sse(events: list[dict[str, Any]]) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def text_stream_events(pieces: list[str], stop: str = "end_turn") -> list[dict[str, Any]]:
    start = message([], stop="end_turn")
    start["stop_reason"] = None
    start["usage"] = usage(25, 1, cache_read_input_tokens=5)
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": text_block("")},
        {"type": "ping"},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
        for p in pieces
    ]
    events += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": 7},
        },
        {"type": "message_stop"},
    ]
    return events


def streaming(body: bytes | Chunks) -> httpx2.Response:
    stream = body if isinstance(body, Chunks) else Chunks([body])
    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)


def client_for(
    handler: Handler, *, retries: int = 4, sleeps: Sleeps | None = None, **options: Any
) -> tuple[lm.Client, SpecTransport]:
    transport = SpecTransport("anthropic", handler)
    policy = RetryPolicy(max_retries=retries, sleep=sleeps or Sleeps(), random=lambda: 0.0)
    c = lm.client(
        f"anthropic:{MODEL}",
        api_key=KEY,
        transport=transport,
        cache=False,
        retry=policy,
        **options,
    )
    return c, transport


def answer(content: list[dict[str, Any]], stop: str = "end_turn", **extra: Any) -> Handler:
    return lambda request: httpx2.Response(200, json=message(content, stop, **extra))


# --- chat -----------------------------------------------------------------------------------


def test_chat_posts_to_v1_messages_with_key_version_and_a_default_max_tokens() -> None:
    c, transport = client_for(
        answer(
            [text_block("Paris.")],
            cache_read_input_tokens=4,
            cache_creation_input_tokens=2,
        )
    )
    r = c.chat("What is the capital of France?")
    transport.assert_clean()
    request = transport.requests[0]
    assert str(request.url) == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    body = transport.bodies[0]
    assert body["model"] == MODEL
    assert isinstance(body["max_tokens"], int) and body["max_tokens"] > 0
    # Text alone goes as a plain string (case 14: servers that flatten strings only).
    assert body["messages"] == [{"role": "user", "content": "What is the capital of France?"}]
    assert (str(r), r.provider, r.model, r.finish_reason) == ("Paris.", "anthropic", MODEL, "stop")
    # input_tokens is the whole prompt: Anthropic's uncached part plus cache reads and writes.
    assert (r.usage.input_tokens, r.usage.output_tokens) == (16, 5)
    assert (r.usage.cached_input_tokens, r.usage.cache_write_tokens) == (4, 2)


def test_a_body_without_max_tokens_is_rejected_by_the_spec_so_the_default_matters() -> None:
    # Negative control: the validator can fail, and on exactly what the default is there for.
    operation = load_spec("anthropic").operation("POST", "/v1/messages")
    with pytest.raises(SpecViolation, match="max_tokens"):
        operation.validate_request({"model": MODEL, "messages": [{"role": "user", "content": "x"}]})


def test_given_options_map_to_anthropic_fields() -> None:
    c, transport = client_for(answer([text_block("ok")], stop="max_tokens"))
    r = c.chat("hi", max_tokens=20, temperature=0.3, top_p=0.9, stop=["END"], seed=1)
    transport.assert_clean()
    body = transport.bodies[0]
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (20, 0.3, 0.9)
    assert body["stop_sequences"] == ["END"]
    assert "seed" not in body  # Anthropic has none; the spec forbids unknown fields
    assert r.finish_reason == "length"


def test_system_prompt_goes_top_level_and_system_messages_are_hoisted() -> None:
    c, transport = client_for(answer([text_block("ok")]))
    c.chat(
        [
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Hello"},
        ],
        system="Be brief.",
    )
    transport.assert_clean()
    body = transport.bodies[0]
    assert body["system"] == "Be brief.\n\nAnswer in French."
    assert [m["role"] for m in body["messages"]] == ["user"]


def test_consecutive_messages_of_one_role_are_merged_into_one_turn() -> None:
    c, transport = client_for(answer([text_block("ok")]))
    c.chat(
        [
            {"role": "user", "content": "first"},
            {"role": "user", "content": "second"},
            {"role": "assistant", "content": "reply"},
            {"role": "user", "content": "third"},
        ]
    )
    transport.assert_clean()
    messages = transport.bodies[0]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert [b["text"] for b in messages[0]["content"]] == ["first", "second"]


# --- streaming ------------------------------------------------------------------------------


def test_stream_deltas_join_to_the_text_and_the_response_has_usage_and_finish_reason() -> None:
    events = text_stream_events(["The capital", " is", " Paris."])
    c, transport = client_for(lambda r: streaming(sse(events)))
    stream = c.stream("capital of France?")
    deltas = list(stream)
    transport.assert_clean()
    assert len(transport.stream_events) == len(events)  # every event was schema-checked
    assert transport.bodies[0]["stream"] is True
    assert transport.requests[0].headers["accept"] == "text/event-stream"
    assert deltas == ["The capital", " is", " Paris."]
    assert stream.response is not None
    assert stream.response.text == "".join(deltas)
    assert stream.response.finish_reason == "stop"
    usage_ = stream.response.usage
    assert (usage_.input_tokens, usage_.output_tokens, usage_.cached_input_tokens) == (30, 7, 5)


def test_a_stream_cut_mid_way_raises_stream_interrupted_with_the_partial_text() -> None:
    events = text_stream_events(["Once upon", " a time"])
    head = sse(events[:4])  # message_start .. the first delta: no message_stop ever comes
    broken = Chunks([head], fail=httpx2.ReadError("connection reset by peer"))
    c, _ = client_for(lambda r: streaming(broken))
    stream = c.stream("tell a story")
    with pytest.raises(lm.StreamInterruptedError) as info:
        list(stream)
    assert info.value.partial_text == "Once upon"


def test_a_stream_that_ends_without_message_stop_is_reported_as_interrupted() -> None:
    events = text_stream_events(["Once upon", " a time"])
    c, _ = client_for(lambda r: streaming(sse(events[:4])))
    with pytest.raises(lm.StreamInterruptedError) as info:
        list(c.stream("tell a story"))
    assert info.value.partial_text == "Once upon"


def test_an_overloaded_error_event_after_text_raises_stream_interrupted() -> None:
    events = text_stream_events(["Half an"])[:4]
    events.append(error_body("overloaded_error", "Overloaded"))
    c, transport = client_for(lambda r: streaming(sse(events)))
    with pytest.raises(lm.StreamInterruptedError) as info:
        list(c.stream("hi"))
    transport.assert_clean()  # the error event itself is schema-valid
    assert info.value.partial_text == "Half an"
    assert "Overloaded" in str(info.value)
    assert len(transport.requests) == 1  # text had arrived: not silently retried


def test_an_overloaded_error_event_before_any_text_is_retried_like_a_529() -> None:
    calls: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        if len(calls) == 1:
            start = text_stream_events([])[:1]
            return streaming(sse([*start, error_body("overloaded_error", "Overloaded")]))
        return streaming(sse(text_stream_events(["fine"])))

    sleeps = Sleeps()
    c, transport = client_for(handler, sleeps=sleeps)
    stream = c.stream("hi")
    assert "".join(stream) == "fine"
    transport.assert_clean()
    assert len(calls) == 2 and len(sleeps.delays) == 1


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


def test_tool_calls_are_parsed_and_tool_results_go_back_as_tool_result_blocks() -> None:
    replies = [
        message(
            [text_block("Let me check."), tool_use("toolu_01", "get_weather", {"city": "Paris"})],
            stop="tool_use",
        ),
        message([text_block("It is sunny in Paris.")]),
    ]
    c, transport = client_for(lambda r: httpx2.Response(200, json=replies.pop(0)))
    first = c.chat("Weather in Paris?", tools=[WEATHER], tool_choice="required")
    assert first.finish_reason == "tool_calls"
    [call] = first.tool_calls
    assert (call.id, call.name, call.arguments) == ("toolu_01", "get_weather", {"city": "Paris"})
    body = transport.bodies[0]
    assert body["tools"] == [
        {
            "name": "get_weather",
            "input_schema": WEATHER["parameters"],
            "description": "Current weather in a city.",
        }
    ]
    assert body["tool_choice"] == {"type": "any"}

    history = [
        lm.Message("user", "Weather in Paris?"),
        lm.Message("assistant", first.text, tool_calls=first.tool_calls),
        lm.Message("tool", '{"sky": "sunny"}', tool_call_id=call.id),
    ]
    second = c.chat(history, tools=[WEATHER])
    transport.assert_clean()
    sent = transport.bodies[1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    assert sent[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": '{"sky": "sunny"}'}
    ]
    assert second.text == "It is sunny in Paris."


def test_tool_call_ids_from_other_providers_are_made_valid_and_still_pair_up() -> None:
    c, transport = client_for(answer([text_block("ok")]))
    foreign = lm.ToolCall("call:abc/1", "get_weather", {"city": "Oslo"})
    c.chat(
        [
            lm.Message("user", "Weather?"),
            lm.Message("assistant", "", tool_calls=[foreign]),
            lm.Message("tool", "rain", tool_call_id="call:abc/1"),
        ],
        tools=[WEATHER],
    )
    transport.assert_clean()
    sent = transport.bodies[0]["messages"]
    assert sent[1]["content"][0]["id"] == sent[2]["content"][0]["tool_use_id"] == "call_abc_1"


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ("get_weather", {"type": "tool", "name": "get_weather"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
def test_tool_choice_maps_to_anthropic_shapes(choice: Any, wire: dict[str, Any]) -> None:
    c, transport = client_for(answer([text_block("ok")]))
    c.chat("hi", tools=[WEATHER], tool_choice=choice)
    transport.assert_clean()
    assert transport.bodies[0]["tool_choice"] == wire


class City(BaseModel):
    name: str
    population: int


def test_schema_forces_a_tool_and_its_input_is_parsed_into_the_pydantic_model() -> None:
    reply = [tool_use("toolu_02", "City", {"name": "Paris", "population": 2100000})]
    c, transport = client_for(answer(reply, stop="tool_use"))
    r = c.chat("Largest city of France?", schema=City)
    transport.assert_clean()
    body = transport.bodies[0]
    assert body["tool_choice"] == {"type": "tool", "name": "City"}
    [tool] = body["tools"]
    assert tool["name"] == "City"
    assert tool["input_schema"]["properties"] == City.model_json_schema()["properties"]
    assert r.parsed == City(name="Paris", population=2100000)
    assert json.loads(r.text) == {"name": "Paris", "population": 2100000}
    assert r.tool_calls == [] and r.finish_reason == "stop"


def test_schema_next_to_tools_lets_the_model_call_a_tool_or_answer_through_the_schema() -> None:
    reply = [tool_use("toolu_05", "get_weather", {"city": "Paris"})]
    c, transport = client_for(answer(reply, stop="tool_use"))
    r = c.chat("Weather in Paris, as a City?", schema=City, tools=[WEATHER])
    transport.assert_clean()
    body = transport.bodies[0]
    assert [t["name"] for t in body["tools"]] == ["get_weather", "City"]
    assert body["tool_choice"] == {"type": "any"}
    assert [t.name for t in r.tool_calls] == ["get_weather"] and r.parsed is None


def test_a_non_object_schema_is_wrapped_for_the_tool_and_unwrapped_in_the_answer() -> None:
    schema = {"title": "Tags", "type": "array", "items": {"type": "string"}}
    reply = [tool_use("toolu_03", "Tags", {"value": ["a", "b"]})]
    c, transport = client_for(answer(reply, stop="tool_use"))
    r = c.chat("tags?", schema=schema)
    transport.assert_clean()
    assert transport.bodies[0]["tools"][0]["input_schema"]["properties"]["value"]["type"] == "array"
    assert r.parsed == ["a", "b"]


def test_a_streamed_schema_answer_arrives_as_json_deltas_and_parses() -> None:
    start = message([], stop="end_turn")
    start["stop_reason"] = None
    pieces = ['{"name": "Pa', 'ris", "population": 2100000}']
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": tool_use("toolu_04", "City", {}),
        },
        *[
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": p},
            }
            for p in pieces
        ],
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 12},
        },
        {"type": "message_stop"},
    ]
    c, transport = client_for(lambda r: streaming(sse(events)))
    stream = c.stream("Largest city of France?", schema=City)
    deltas = list(stream)
    transport.assert_clean()
    assert deltas == pieces
    assert stream.response is not None
    assert stream.response.parsed == City(name="Paris", population=2100000)
    assert stream.response.finish_reason == "stop"


def test_json_mode_is_an_instruction_in_the_system_prompt() -> None:
    c, transport = client_for(answer([text_block('```json\n{"ok": true}\n```')]))
    r = c.chat("status?", system="You are terse.", json_mode=True)
    transport.assert_clean()
    system = transport.bodies[0]["system"]
    assert system.startswith("You are terse.") and "JSON" in system
    assert r.parsed == {"ok": True}


# --- media ----------------------------------------------------------------------------------


def test_images_go_as_base64_or_url_sources_and_pdfs_as_document_blocks() -> None:
    c, transport = client_for(answer([text_block("A cat.")]))
    parts = [
        "Describe these.",
        MediaPart("image", "image/png", data=PNG),
        MediaPart("image", "image/*", url="https://example.com/cat.jpg"),
        MediaPart("document", "application/pdf", data=PDF, filename="doc.pdf"),
    ]
    c.chat(parts)
    transport.assert_clean()
    content = transport.bodies[0]["messages"][0]["content"]
    assert content[1] == {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": "image/png",
            "data": MediaPart("image", "image/png", data=PNG).b64(),
        },
    }
    assert content[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
    }
    assert content[3]["type"] == "document"
    assert content[3]["source"]["media_type"] == "application/pdf"


def test_audio_is_refused_before_any_request_is_sent() -> None:
    c, transport = client_for(answer([text_block("never")]))
    with pytest.raises(lm.ConfigError, match="audio"):
        c.chat(["transcribe", MediaPart("audio", "audio/wav", data=b"RIFF0000WAVE")])
    assert transport.requests == []


def test_an_image_type_anthropic_cannot_read_is_refused_before_sending() -> None:
    c, transport = client_for(answer([text_block("never")]))
    with pytest.raises(lm.ConfigError, match="image/heic"):
        c.chat([MediaPart("image", "image/heic", data=b"\x00" * 16)])
    assert transport.requests == []


def test_embeddings_are_not_offered_and_nothing_is_sent() -> None:
    c, transport = client_for(answer([text_block("never")]))
    with pytest.raises(lm.ConfigError, match="embeddings"):
        c.embed(["a"])
    assert transport.requests == []


# --- models ---------------------------------------------------------------------------------


def model_info(id: str) -> dict[str, Any]:
    return {
        "type": "model",
        "id": id,
        "display_name": id,
        "created_at": "2025-10-01T00:00:00Z",
        "capabilities": None,
        "max_input_tokens": 200000,
        "max_tokens": 64000,
    }


def test_list_models_follows_the_pages() -> None:
    pages = {
        None: {
            "data": [model_info("claude-sonnet-4-5")],
            "has_more": True,
            "first_id": "claude-sonnet-4-5",
            "last_id": "claude-sonnet-4-5",
        },
        "claude-sonnet-4-5": {
            "data": [model_info("claude-haiku-4-5")],
            "has_more": False,
            "first_id": "claude-haiku-4-5",
            "last_id": "claude-haiku-4-5",
        },
    }

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=pages[request.url.params.get("after_id")])

    c, transport = client_for(handler)
    assert c.list_models() == ["claude-haiku-4-5", "claude-sonnet-4-5"]
    transport.assert_clean()
    assert [r.url.path for r in transport.requests] == ["/v1/models", "/v1/models"]


# --- errors ---------------------------------------------------------------------------------


def failing(status: int, kind: str, text: str, headers: dict[str, str] | None = None) -> Handler:
    return lambda r: httpx2.Response(status, json=error_body(kind, text), headers=headers)


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_names_the_env_var_and_never_shows_the_key(status: int) -> None:
    kind = "authentication_error" if status == 401 else "permission_error"
    c, transport = client_for(failing(status, kind, "invalid x-api-key"))
    with pytest.raises(lm.AuthenticationError) as info:
        c.chat("hi")
    transport.assert_clean()
    assert info.value.status_code == status
    assert "ANTHROPIC_API_KEY" in str(info.value)
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert len(transport.requests) == 1  # a bad key is not retried


def test_a_bad_request_raises_bad_request_error() -> None:
    text = "messages: roles must alternate between user and assistant"
    c, _ = client_for(failing(400, "invalid_request_error", text))
    with pytest.raises(lm.BadRequestError, match="roles must alternate") as info:
        c.chat("hi")
    assert not isinstance(info.value, lm.ContextLengthError)


def test_an_unknown_model_raises_model_not_found() -> None:
    c, _ = client_for(failing(404, "not_found_error", "model: claude-nonexistent"))
    with pytest.raises(lm.ModelNotFoundError):
        c.chat("hi")


def test_a_prompt_that_is_too_long_raises_context_length_error() -> None:
    text = "prompt is too long: 215000 tokens > 200000 maximum"
    c, _ = client_for(failing(400, "invalid_request_error", text))
    with pytest.raises(lm.ContextLengthError):
        c.chat("a very long prompt")


def test_a_429_carries_retry_after() -> None:
    handler = failing(429, "rate_limit_error", "Number of requests exceeded", {"retry-after": "17"})
    c, _ = client_for(handler, retries=0)
    with pytest.raises(lm.RateLimitError) as info:
        c.chat("hi")
    assert info.value.retry_after == 17.0


@pytest.mark.parametrize("status", [500, 529])
def test_server_errors_are_retried_with_backoff_then_succeed(status: int) -> None:
    replies = [
        httpx2.Response(
            status, json=error_body("overloaded_error" if status == 529 else "api_error", "busy")
        ),
        httpx2.Response(status, json=error_body("api_error", "busy")),
        httpx2.Response(200, json=message([text_block("finally")])),
    ]
    sleeps = Sleeps()
    c, transport = client_for(lambda r: replies.pop(0), sleeps=sleeps)
    assert c.chat("hi").text == "finally"
    assert len(transport.requests) == 3
    assert len(sleeps.delays) == 2 and sleeps.delays[1] > sleeps.delays[0]


def test_a_body_that_is_not_json_raises_provider_error() -> None:
    c, _ = client_for(
        lambda r: httpx2.Response(
            200, content=b"<html>gateway</html>", headers={"content-type": "text/html"}
        )
    )
    with pytest.raises(lm.ProviderError, match="not JSON"):
        c.chat("hi")
