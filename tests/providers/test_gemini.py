"""Wire conformance of the Gemini provider through the public API: every request body is
validated against the Gemini v1beta spec by SpecTransport, and every response and stream event
the tests answer with is a schema-valid GenerateContentResponse (or embedding/model list)."""

from __future__ import annotations

import contextlib
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

KEY = "AIzaSy-test-0123456789abcdefWXYZ"
MODEL = "gemini-2.5-flash"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 24

Handler = Callable[[httpx2.Request], httpx2.Response]


# --- schema-valid answers -------------------------------------------------------------------


def generated(
    parts: list[dict[str, Any]],
    finish: str | None = "STOP",
    usage: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [candidate], "modelVersion": MODEL, **extra}
    if usage is not None:
        out["usageMetadata"] = usage
    return out


USAGE = {
    "promptTokenCount": 12,
    "candidatesTokenCount": 4,
    "thoughtsTokenCount": 6,
    "cachedContentTokenCount": 8,
    "totalTokenCount": 22,
}


def error_body(code: int, status: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


def sse(events: list[dict[str, Any]]) -> bytes:
    return "".join(f"data: {json.dumps(e)}\r\n\r\n" for e in events).encode()


def streaming(body: bytes | Chunks) -> httpx2.Response:
    stream = body if isinstance(body, Chunks) else Chunks([body])
    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)


def client_for(
    handler: Handler,
    *,
    retries: int = 4,
    sleeps: Sleeps | None = None,
    validate_responses: bool = True,
    model: str = MODEL,
    **options: Any,
) -> tuple[lm.Client, SpecTransport]:
    transport = SpecTransport("gemini", handler, validate_responses=validate_responses)
    policy = RetryPolicy(max_retries=retries, sleep=sleeps or Sleeps(), random=lambda: 0.0)
    c = lm.client(
        f"gemini:{model}", api_key=KEY, transport=transport, cache=False, retry=policy, **options
    )
    return c, transport


def answer(parts: list[dict[str, Any]], finish: str | None = "STOP", **kw: Any) -> Handler:
    return lambda request: httpx2.Response(200, json=generated(parts, finish, **kw))


# --- chat -----------------------------------------------------------------------------------


def test_chat_posts_generate_content_with_the_key_in_a_header_never_in_the_url() -> None:
    c, transport = client_for(answer([{"text": "Paris."}], usage=USAGE))
    r = c.chat("What is the capital of France?")
    transport.assert_clean()
    request = transport.requests[0]
    url = str(request.url)
    assert url == f"https://generativelanguage.googleapis.com/v1beta/models/{MODEL}:generateContent"
    assert KEY not in url and "key=" not in url
    assert request.headers["x-goog-api-key"] == KEY
    assert transport.bodies[0] == {
        "contents": [{"role": "user", "parts": [{"text": "What is the capital of France?"}]}]
    }
    assert (str(r), r.provider, r.model, r.finish_reason) == ("Paris.", "gemini", MODEL, "stop")
    # Thinking is billed as output; cached tokens are part of the prompt count.
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.cached_input_tokens) == (12, 10, 8)


def test_options_go_into_generation_config_in_camel_case() -> None:
    c, transport = client_for(answer([{"text": "ok"}], finish="MAX_TOKENS"))
    r = c.chat("hi", temperature=0.2, max_tokens=50, top_p=0.8, stop=["END"], seed=3)
    transport.assert_clean()
    assert transport.bodies[0]["generationConfig"] == {
        "temperature": 0.2,
        "maxOutputTokens": 50,
        "topP": 0.8,
        "stopSequences": ["END"],
        "seed": 3,
    }
    assert r.finish_reason == "length"


def test_openai_style_field_names_are_rejected_by_the_validator() -> None:
    # Negative control: the spec is strict enough to catch an OpenAI-ism in the body.
    operation = load_spec("gemini").operation("POST", f"/v1beta/models/{MODEL}:generateContent")
    with pytest.raises(SpecViolation, match="max_tokens"):
        operation.validate_request(
            {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"max_tokens": 5}}
        )


def test_system_prompt_becomes_system_instruction_and_roles_are_user_and_model() -> None:
    c, transport = client_for(answer([{"text": "ok"}]))
    c.chat(
        [
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "user", "content": "How are you?"},
            {"role": "user", "content": "And the weather?"},
        ],
        system="Be brief.",
    )
    transport.assert_clean()
    body = transport.bodies[0]
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief.\n\nAnswer in French."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert [p["text"] for p in body["contents"][2]["parts"]] == ["How are you?", "And the weather?"]


def test_a_blocked_prompt_raises_bad_request_instead_of_returning_empty_text() -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "modelVersion": MODEL}
    c, transport = client_for(lambda r: httpx2.Response(200, json=blocked))
    with pytest.raises(lm.BadRequestError, match="SAFETY"):
        c.chat("something unsafe")
    transport.assert_clean()
    assert len(transport.requests) == 1  # not retried


def test_a_safety_stop_is_reported_as_content_filter() -> None:
    c, _ = client_for(answer([{"text": ""}], finish="SAFETY"))
    assert c.chat("hi").finish_reason == "content_filter"


# --- streaming ------------------------------------------------------------------------------


def test_stream_uses_alt_sse_and_deltas_join_to_the_text_with_usage_and_finish() -> None:
    events = [
        generated([{"text": "The capital"}], finish=None),
        generated([{"text": " is"}], finish=None),
        generated([{"text": " Paris."}], finish="STOP", usage=USAGE),
    ]
    c, transport = client_for(lambda r: streaming(sse(events)))
    stream = c.stream("capital of France?")
    deltas = list(stream)
    transport.assert_clean()
    assert len(transport.stream_events) == 3
    request = transport.requests[0]
    assert request.url.path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert dict(request.url.params) == {"alt": "sse"}
    assert deltas == ["The capital", " is", " Paris."]
    assert stream.response is not None
    assert stream.response.text == "".join(deltas)
    assert stream.response.finish_reason == "stop"
    assert (stream.response.usage.input_tokens, stream.response.usage.output_tokens) == (12, 10)


def test_a_stream_cut_mid_way_raises_stream_interrupted_with_the_partial_text() -> None:
    head = sse([generated([{"text": "Once upon"}], finish=None)])
    broken = Chunks([head], fail=httpx2.RemoteProtocolError("peer closed connection"))
    c, _ = client_for(lambda r: streaming(broken))
    with pytest.raises(lm.StreamInterruptedError) as info:
        list(c.stream("tell a story"))
    assert info.value.partial_text == "Once upon"


def test_a_stream_that_ends_without_a_finish_reason_is_reported_as_interrupted() -> None:
    c, _ = client_for(lambda r: streaming(sse([generated([{"text": "Once"}], finish=None)])))
    with pytest.raises(lm.StreamInterruptedError) as info:
        list(c.stream("tell a story"))
    assert info.value.partial_text == "Once"


def test_an_error_event_mid_stream_raises_stream_interrupted_caused_by_the_mapped_error() -> None:
    events = [
        generated([{"text": "Half an"}], finish=None),
        error_body(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    ]
    # The Gemini spec describes no error object at all (not for HTTP errors, not inside a
    # stream), so this one answer cannot be schema-checked; the request still is.
    c, transport = client_for(lambda r: streaming(sse(events)), validate_responses=False)
    with pytest.raises(lm.StreamInterruptedError) as info:
        list(c.stream("hi"))
    transport.assert_clean()
    assert info.value.partial_text == "Half an"
    assert "overloaded" in str(info.value)
    cause = info.value.__cause__
    assert isinstance(cause, lm.ProviderError) and cause.status_code == 503
    assert len(transport.requests) == 1


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


def test_function_calls_round_trip_with_stable_ids_names_and_thought_signatures() -> None:
    call_part = {
        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
        "thoughtSignature": "c2lnbmF0dXJl",
    }
    replies = [
        generated([call_part], responseId="resp-1"),
        generated([call_part], responseId="resp-1"),
        generated([{"text": "Sunny in Paris."}]),
    ]
    c, transport = client_for(lambda r: httpx2.Response(200, json=replies.pop(0)))
    first = c.chat("Weather in Paris?", tools=[WEATHER], tool_choice="required")
    again = c.chat("Weather in Paris?", tools=[WEATHER], tool_choice="get_weather")
    assert first.finish_reason == "tool_calls"
    [call] = first.tool_calls
    assert (call.name, call.arguments) == ("get_weather", {"city": "Paris"})
    assert call.id and again.tool_calls[0].id == call.id  # derived from the call: stable
    body = transport.bodies[0]
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Current weather in a city.",
                    "parametersJsonSchema": WEATHER["parameters"],
                }
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert transport.bodies[1]["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }

    history = [
        lm.Message("user", "Weather in Paris?"),
        lm.Message("assistant", "", tool_calls=first.tool_calls),
        lm.Message("tool", '{"sky": "sunny"}', tool_call_id=call.id),
    ]
    final = c.chat(history, tools=[WEATHER])
    transport.assert_clean()
    sent = transport.bodies[2]["contents"]
    assert [c["role"] for c in sent] == ["user", "model", "user"]
    assert sent[1]["parts"] == [call_part]  # the signature goes back with its call
    assert sent[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}}
    ]
    assert final.text == "Sunny in Paris."


def test_a_plain_text_tool_result_is_wrapped_in_an_object() -> None:
    c, transport = client_for(answer([{"text": "ok"}]))
    c.chat(
        [
            lm.Message("user", "Weather?"),
            lm.Message("assistant", "", tool_calls=[lm.ToolCall("x1", "get_weather", {})]),
            lm.Message("tool", "rain", tool_call_id="x1"),
        ],
        tools=[WEATHER],
    )
    transport.assert_clean()
    response = transport.bodies[0]["contents"][2]["parts"][0]["functionResponse"]
    assert response["response"] == {"result": "rain"}


def test_a_tool_result_whose_call_is_unknown_is_refused_before_sending() -> None:
    c, transport = client_for(answer([{"text": "never"}]))
    with pytest.raises(lm.ConfigError, match="name"):
        c.chat([lm.Message("tool", "rain", tool_call_id="nowhere")], tools=[WEATHER])
    assert transport.requests == []


class City(BaseModel):
    name: str
    population: int


def test_schema_sends_response_json_schema_and_parses_into_the_model() -> None:
    c, transport = client_for(answer([{"text": '{"name": "Paris", "population": 2100000}'}]))
    r = c.chat("Largest city of France?", schema=City)
    transport.assert_clean()
    config = transport.bodies[0]["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == City.model_json_schema()
    assert r.parsed == City(name="Paris", population=2100000)


def test_json_mode_asks_for_a_json_mime_type() -> None:
    c, transport = client_for(answer([{"text": '{"ok": true}'}]))
    r = c.chat("status?", json_mode=True)
    transport.assert_clean()
    assert transport.bodies[0]["generationConfig"] == {"responseMimeType": "application/json"}
    assert r.parsed == {"ok": True}


def test_thought_parts_are_not_part_of_the_answer() -> None:
    c, _ = client_for(answer([{"text": "thinking...", "thought": True}, {"text": "42"}]))
    assert c.chat("answer?").text == "42"


# --- media and audio ------------------------------------------------------------------------


def test_media_goes_inline_as_base64_and_urls_as_file_data() -> None:
    c, transport = client_for(answer([{"text": "A cat."}]))
    image = MediaPart("image", "image/png", data=PNG)
    audio = MediaPart("audio", "audio/wav", data=WAV)
    c.chat(["Describe.", image, audio, MediaPart("image", "image/*", url="https://x.test/cat.jpg")])
    transport.assert_clean()
    parts = transport.bodies[0]["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": image.b64()}}
    assert parts[2] == {"inlineData": {"mimeType": "audio/wav", "data": audio.b64()}}
    assert parts[3] == {"fileData": {"fileUri": "https://x.test/cat.jpg", "mimeType": "image/jpeg"}}


def test_transcribe_sends_the_audio_inline_with_a_verbatim_instruction(tmp_path: Any) -> None:
    path = tmp_path / "talk.wav"
    path.write_bytes(WAV)
    c, transport = client_for(answer([{"text": " Hello world. \n"}]))
    text = c.transcribe(str(path), language="en")
    transport.assert_clean()
    assert text == "Hello world."
    assert isinstance(text, lm.Transcript) and text.language == "en"
    body = transport.bodies[0]
    assert transport.requests[0].url.path == f"/v1beta/models/{MODEL}:generateContent"
    instruction, inline = body["contents"][0]["parts"]
    assert "verbatim" in instruction["text"]
    assert inline["inlineData"]["mimeType"] == "audio/wav"
    assert body["generationConfig"] == {"temperature": 0}


def test_transcribe_with_timestamps_is_refused_before_sending() -> None:
    c, transport = client_for(answer([{"text": "never"}]))
    with pytest.raises(lm.ConfigError, match="timestamps"):
        c.transcribe(MediaPart("audio", "audio/wav", data=WAV), timestamps=True)
    assert transport.requests == []


# --- embeddings and models ------------------------------------------------------------------


def test_one_text_is_embedded_with_embed_content() -> None:
    c, transport = client_for(
        lambda r: httpx2.Response(200, json={"embedding": {"values": [0.1, -0.2, 0.3]}})
    )
    assert c.embed("hello") == [[0.1, -0.2, 0.3]]
    transport.assert_clean()
    request = transport.requests[0]
    assert request.url.path == "/v1beta/models/gemini-embedding-001:embedContent"
    assert transport.bodies[0] == {"content": {"parts": [{"text": "hello"}]}}


def test_many_texts_use_batch_embed_contents_in_batches_of_at_most_100() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        requests = json.loads(request.content)["requests"]
        rows = [{"values": [float(len(r["content"]["parts"][0]["text"]))]} for r in requests]
        return httpx2.Response(200, json={"embeddings": rows})

    c, transport = client_for(handler)
    texts = ["x" * (i % 7 + 1) for i in range(150)]
    vectors = c.embed(texts)
    transport.assert_clean()
    assert vectors == [[float(len(t))] for t in texts]
    assert [len(b["requests"]) for b in transport.bodies] == [100, 50]
    assert transport.bodies[0]["requests"][0] == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "x"}]},
    }


def test_list_models_follows_next_page_token_and_strips_the_prefix() -> None:
    pages = {
        None: {"models": [{"name": "models/gemini-2.5-flash"}], "nextPageToken": "p2"},
        "p2": {"models": [{"name": "models/gemini-embedding-001"}]},
    }

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=pages[request.url.params.get("pageToken")])

    c, transport = client_for(handler)
    assert c.list_models() == ["gemini-2.5-flash", "gemini-embedding-001"]
    transport.assert_clean()
    assert len(transport.requests) == 2


# --- errors ---------------------------------------------------------------------------------


def failing(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Handler:
    return lambda r: httpx2.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            400,
            error_body(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"},
            ),
        ),
        (403, error_body(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.")),
    ],
)
def test_a_rejected_key_names_the_env_var_and_never_shows_the_key(
    status: int, body: dict[str, Any]
) -> None:
    c, transport = client_for(failing(status, body))
    with pytest.raises(lm.AuthenticationError) as info:
        c.chat("hi")
    assert info.value.status_code == status
    assert "GEMINI_API_KEY" in str(info.value)
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert len(transport.requests) == 1


def test_a_bad_request_raises_bad_request_error() -> None:
    body = error_body(400, "INVALID_ARGUMENT", "Invalid value at 'contents[0].role'")
    c, _ = client_for(failing(400, body))
    with pytest.raises(lm.BadRequestError, match="contents") as info:
        c.chat("hi")
    assert type(info.value) is lm.BadRequestError


def test_an_unknown_model_raises_model_not_found() -> None:
    text = "models/gemini-9 is not found for API version v1beta, or is not supported for generateContent."
    c, _ = client_for(failing(404, error_body(404, "NOT_FOUND", text)))
    with pytest.raises(lm.ModelNotFoundError):
        c.chat("hi")


def test_too_many_input_tokens_raises_context_length_error() -> None:
    text = "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
    c, _ = client_for(failing(400, error_body(400, "INVALID_ARGUMENT", text)))
    with pytest.raises(lm.ContextLengthError):
        c.chat("a very long prompt")


def test_a_429_takes_its_wait_from_retry_info_in_the_body() -> None:
    body = error_body(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota.",
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"},
    )
    c, _ = client_for(failing(429, body), retries=0)
    with pytest.raises(lm.RateLimitError) as info:
        c.chat("hi")
    assert info.value.retry_after == 30.0


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried_with_backoff_then_succeed(status: int) -> None:
    replies = [
        httpx2.Response(status, json=error_body(status, "UNAVAILABLE", "overloaded")),
        httpx2.Response(200, json=generated([{"text": "finally"}])),
    ]
    sleeps = Sleeps()
    c, transport = client_for(lambda r: replies.pop(0), sleeps=sleeps)
    assert c.chat("hi").text == "finally"
    assert len(transport.requests) == 2 and len(sleeps.delays) == 1


def test_a_body_that_is_not_json_raises_provider_error() -> None:
    c, _ = client_for(
        lambda r: httpx2.Response(
            200, content=b"upstream timeout", headers={"content-type": "text/plain"}
        )
    )
    with pytest.raises(lm.ProviderError, match="not JSON"):
        c.chat("hi")


def test_a_model_name_is_escaped_in_the_url_path_so_it_cannot_reach_another_endpoint() -> None:
    c, transport = client_for(
        answer([{"text": "ok"}]),
        validate_responses=False,
        retries=0,
        model="../../files/x?alt=media#y",
    )
    with contextlib.suppress(lm.LLMError):
        c.chat("hi")
    url = transport.requests[0].url
    assert url.raw_path == b"/v1beta/models/..%2F..%2Ffiles%2Fx%3Falt%3Dmedia%23y:generateContent"
    assert url.query == b"", "nothing of the name became a query string"
