"""Client behaviour that is the same for every provider: retries with backoff that never
undercut Retry-After, stream retries before the first token, clear errors for timeouts,
resets, malformed bodies and streams cut mid-way, and keys that never leak.

Faults are injected with httpx2.MockTransport; the wire format itself is proven against the
specs in tests/providers/."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx2
import pytest

import llm_magics as lm
from llm_magics._runtime.retry import RetryPolicy
from tests.support.faults import Chunks, Sleeps

KEY = "sk-secret-key-abcdefghijklmnopQRST"


def ok(text: str = "fine") -> httpx2.Response:
    return httpx2.Response(
        200,
        json={
            "id": "x",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        },
    )


def make_client(
    handler: Any, *, retries: int = 4, keys: str | None = None, **options: Any
) -> tuple[lm.Client, Sleeps]:
    sleeps = Sleeps()
    policy = RetryPolicy(max_retries=retries, sleep=sleeps, random=lambda: 1.0)
    client = lm.client(
        "openai:m",
        api_key=keys or KEY,
        transport=httpx2.MockTransport(handler),
        retry=policy,
        cache=False,
        **options,
    )
    return client, sleeps


def scripted(*responses: httpx2.Response | Exception) -> tuple[Any, list[httpx2.Request]]:
    seen: list[httpx2.Request] = []
    queue = list(responses)

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler, seen


def test_500_then_success_is_retried_with_backoff() -> None:
    handler, seen = scripted(
        httpx2.Response(500, text="boom"), httpx2.Response(503, text="busy"), ok("done")
    )
    client, sleeps = make_client(handler)
    assert client.chat("hi").text == "done"
    assert len(seen) == 3
    assert sleeps.delays == [0.5, 1.0]


def test_a_persistent_503_gives_up_after_max_retries_with_a_clear_error() -> None:
    handler, seen = scripted(httpx2.Response(503, json={"error": {"message": "overloaded"}}))
    client, _ = make_client(handler, retries=2)
    with pytest.raises(lm.ProviderError, match="overloaded") as info:
        client.chat("hi")
    assert info.value.status_code == 503
    assert len(seen) == 3


def test_429_waits_at_least_retry_after_before_the_next_attempt() -> None:
    handler, seen = scripted(
        httpx2.Response(429, json={"error": {"message": "rate"}}, headers={"retry-after": "7"}),
        ok(),
    )
    sleeps = Sleeps()
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        sleeps.delays.append(seconds)
        clock[0] += seconds

    client = lm.client(
        "openai:m",
        api_key=KEY,
        transport=httpx2.MockTransport(handler),
        cache=False,
        retry=RetryPolicy(sleep=sleep, random=lambda: 1.0),
    )
    assert client.keys is not None
    client.keys._clock = lambda: clock[0]
    client.keys._sleep = sleep
    assert client.chat("hi").text == "fine"
    assert len(seen) == 2
    assert sum(sleeps.delays) >= 7.0


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    handler, seen = scripted(httpx2.Response(status, json={"error": {"message": "no"}}))
    client, _ = make_client(handler)
    with pytest.raises(lm.ProviderError):
        client.chat("hi")
    assert len(seen) == 1


def test_a_read_timeout_is_retried_then_reported_as_timeout_error() -> None:
    handler, seen = scripted(httpx2.ReadTimeout("slow"))
    client, _ = make_client(handler, retries=1)
    with pytest.raises(lm.TimeoutError, match="did not answer in time"):
        client.chat("hi")
    assert len(seen) == 2


def test_the_whole_request_timeout_bounds_a_server_that_never_answers() -> None:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(30)
        return ok()

    client, _ = make_client(handler, retries=0, timeout=0.2)
    with pytest.raises(lm.TimeoutError, match=r"0\.2 s"):
        client.chat("hi")


def test_a_connection_reset_becomes_api_connection_error_after_retries() -> None:
    handler, seen = scripted(httpx2.ReadError("Connection reset by peer"))
    client, _ = make_client(handler, retries=2)
    with pytest.raises(lm.APIConnectionError, match="Connection reset by peer"):
        client.chat("hi")
    assert len(seen) == 3


def test_a_connection_reset_then_success_recovers() -> None:
    handler, _ = scripted(httpx2.ConnectError("refused"), ok("back"))
    client, _ = make_client(handler)
    assert client.chat("hi").text == "back"


def test_a_malformed_json_body_is_a_clear_provider_error() -> None:
    handler, _ = scripted(httpx2.Response(200, text="<html>gateway</html>"))
    client, _ = make_client(handler)
    with pytest.raises(lm.ProviderError, match="not JSON"):
        client.chat("hi")


def sse_response(pieces: list[str]) -> httpx2.Response:
    """SSE that sends a delta per piece and then drops the connection."""
    events = [
        {
            "id": "x",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
        }
        for piece in pieces
    ]
    cut = httpx2.RemoteProtocolError("peer closed connection without sending complete message body")
    stream = Chunks([f"data: {json.dumps(e)}\n\n".encode() for e in events], fail=cut)
    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)


def test_a_stream_cut_mid_way_raises_stream_interrupted_keeping_the_partial_text() -> None:
    handler, seen = scripted(sse_response(["Hello", " wor"]))
    client, _ = make_client(handler)
    stream = client.stream("hi")
    received: list[str] = []
    with pytest.raises(lm.StreamInterruptedError) as info:
        for delta in stream:
            received.append(delta)
    assert received == ["Hello", " wor"]
    assert info.value.partial_text == "Hello wor"
    assert len(seen) == 1, "a stream that already delivered text must not be silently restarted"


def test_a_stream_that_breaks_before_its_first_token_is_retried() -> None:
    handler, seen = scripted(
        sse_response([]),
        httpx2.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=b'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n',
        ),
    )
    client, _ = make_client(handler)
    assert "".join(client.stream("hi")) == "ok"
    assert len(seen) == 2


def test_a_streamed_error_status_raises_before_any_delta() -> None:
    handler, _ = scripted(httpx2.Response(401, json={"error": {"message": "bad key"}}))
    client, _ = make_client(handler)
    with pytest.raises(lm.AuthenticationError):
        list(client.stream("hi"))


def test_the_key_never_appears_in_errors_reprs_or_error_attributes() -> None:
    handler, _ = scripted(httpx2.Response(401, json={"error": {"message": "Incorrect API key"}}))
    client, _ = make_client(handler)
    with pytest.raises(lm.AuthenticationError) as info:
        client.chat("hi")
    exc = info.value
    visible = " ".join(
        [str(exc), repr(exc), repr(client), repr(client.keys), repr(exc.request), str(exc.__dict__)]
    )
    assert KEY not in visible
    assert "...QRST" in str(exc) and "OPENAI_API_KEY" in str(exc)


def test_with_several_keys_a_rejected_key_is_retired_and_the_next_one_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    used: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        key = request.headers["authorization"].removeprefix("Bearer ")
        used.append(key)
        if key.endswith("AAAA"):
            return httpx2.Response(401, json={"error": {"message": "revoked"}})
        return ok()

    pool = ["sk-first-key-000AAAA", "sk-second-key-00BBBB"]
    monkeypatch.setenv("OPENAI_API_KEYS", ",".join(pool))
    client = lm.client("openai:m", transport=httpx2.MockTransport(handler), cache=False)
    assert client.keys is not None
    assert client.chat("a").text == "fine"
    assert client.chat("b").text == "fine"
    assert used == ["sk-first-key-000AAAA", "sk-second-key-00BBBB", "sk-second-key-00BBBB"]
    states = {row["key"]: row["state"] for row in client.keys.status()}
    assert states == {"...AAAA": "dead (rejected)", "...BBBB": "ok"}


def test_missing_key_is_a_config_error_naming_the_variable_and_the_offline_option() -> None:
    with pytest.raises(lm.ConfigError) as info:
        lm.client("anthropic:claude-haiku-4-5")
    message = str(info.value)
    assert "ANTHROPIC_API_KEY" in message and "ANTHROPIC_API_KEYS" in message and "local" in message


def test_sync_calls_work_while_an_event_loop_is_running_in_this_thread() -> None:
    # The situation inside a Jupyter kernel: a loop is running and a cell calls chat().
    handler, _ = scripted(ok("from inside"))
    client, _ = make_client(handler)

    async def cell() -> str:
        return client.chat("hi").text

    assert asyncio.run(cell()) == "from inside"


def test_options_given_to_client_are_defaults_for_every_call() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        bodies.append(json.loads(request.content))
        return ok()

    client, _ = make_client(handler, temperature=0.3, system="Be terse.")
    client.chat("a")
    client.chat("b", temperature=0.9)
    assert bodies[0]["temperature"] == 0.3 and bodies[0]["messages"][0] == {
        "role": "system",
        "content": "Be terse.",
    }
    assert bodies[1]["temperature"] == 0.9


def test_braces_in_prompts_are_sent_verbatim() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        bodies.append(json.loads(request.content))
        return ok()

    client, _ = make_client(handler)
    client.chat('Explain {"a": {x}} and {0} and {')
    assert bodies[0]["messages"][0]["content"] == 'Explain {"a": {x}} and {0} and {'


# --- every failure is an LLMError (case 11 of the hardening issue) -------------------------

HTTPX_ERRORS = sorted(
    (
        value
        for value in vars(httpx2).values()
        if isinstance(value, type)
        and issubclass(value, Exception)
        and value.__module__.startswith("httpx2")
    ),
    key=lambda cls: cls.__name__,
)


def _instance(cls: type[Exception], request: httpx2.Request) -> Exception:
    if issubclass(cls, httpx2.HTTPStatusError):
        return cls("status", request=request, response=httpx2.Response(500, request=request))
    if issubclass(cls, httpx2.RequestError):
        return cls(f"{cls.__name__} happened", request=request)
    try:
        return cls()  # the StreamErrors take no message
    except TypeError:
        return cls(f"{cls.__name__} happened")


def test_the_walk_covers_the_whole_httpx2_exception_tree() -> None:
    names = {cls.__name__ for cls in HTTPX_ERRORS}
    assert {"HTTPError", "DecodingError", "InvalidURL", "StreamClosed", "ConnectError"} <= names
    assert len(HTTPX_ERRORS) >= 25


@pytest.mark.parametrize("cls", HTTPX_ERRORS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_every_httpx2_exception_becomes_an_llm_error_with_it_as_the_cause(
    cls: type[Exception], streamed: bool
) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise _instance(cls, request)

    client, _ = make_client(handler, retries=0)
    with pytest.raises(lm.LLMError) as info:
        if streamed:
            list(client.stream("hi"))
        else:
            client.chat("hi")
    assert isinstance(info.value.__cause__, cls)
    assert KEY not in str(info.value) and info.value.message


MALFORMED: dict[str, Any] = {
    "not JSON": lambda: httpx2.Response(200, text="<html>gateway</html>"),
    "a JSON list": lambda: httpx2.Response(200, json=[1, 2]),
    "no choices": lambda: httpx2.Response(200, json={"id": "x", "object": "chat.completion"}),
    "empty choices": lambda: httpx2.Response(200, json={"id": "x", "choices": []}),
    "message is null": lambda: httpx2.Response(200, json={"choices": [{"message": None}]}),
    "choices is a string": lambda: httpx2.Response(200, json={"choices": "many"}),
    "corrupt gzip": lambda: httpx2.Response(
        200, stream=Chunks([b"definitely not gzip"]), headers={"content-encoding": "gzip"}
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_an_answer_of_an_unexpected_shape_is_a_provider_error_naming_the_provider(
    case: str,
) -> None:
    handler, _ = scripted(MALFORMED[case]())
    client, _ = make_client(handler, retries=0)
    with pytest.raises(lm.ProviderError) as info:
        client.chat("hi")
    assert "openai" in str(info.value)


def test_a_connection_cut_while_reading_the_answer_does_not_say_could_not_reach() -> None:
    handler, _ = scripted(httpx2.RemoteProtocolError("peer closed connection mid-body"))
    client, _ = make_client(handler, retries=0)
    with pytest.raises(lm.APIConnectionError) as info:
        client.chat("hi")
    assert "could not reach" not in str(info.value)
    assert "broke before the answer was complete" in str(info.value)


def test_embeddings_of_an_unexpected_shape_say_what_came_and_how_to_fix_llama_cpp() -> None:
    per_token = {"object": "list", "data": [{"index": 0, "embedding": [[0.1, 0.2], [0.3, 0.4]]}]}
    handler, _ = scripted(httpx2.Response(200, json=per_token))
    client, _ = make_client(handler, retries=0)
    with pytest.raises(lm.ProviderError, match="--pooling mean"):
        client.embed(["one text"])


def test_a_prompt_with_a_lone_surrogate_is_a_config_error_saying_where() -> None:
    handler, seen = scripted(ok())
    client, _ = make_client(handler, retries=0)
    with pytest.raises(lm.ConfigError, match=r"'\\ud800' \(near '.*abc \\ud800 def"):
        client.chat("abc \ud800 def")
    assert seen == []


# --- options (case 10 and 19 of the hardening issue) ---------------------------------------


def test_a_misspelt_option_is_a_config_error_naming_the_right_one_and_nothing_is_sent() -> None:
    handler, seen = scripted(ok())
    client, _ = make_client(handler)
    with pytest.raises(lm.ConfigError, match=r"temprature=.*Did you mean temperature=\?"):
        client.chat("hi", temprature=0)
    assert seen == []


def test_extra_body_is_the_way_to_send_a_field_the_package_does_not_know() -> None:
    handler, seen = scripted(ok())
    client, _ = make_client(handler)
    client.chat("hi", extra_body={"logit_bias": {"50256": -100}})
    assert json.loads(seen[0].content)["logit_bias"] == {"50256": -100}


def test_a_client_default_that_is_not_a_request_field_never_reaches_a_chat_body() -> None:
    handler, seen = scripted(ok())
    client, _ = make_client(handler, embed_model="text-embedding-3-small", temperature=0)
    client.chat("hi")
    body = json.loads(seen[0].content)
    assert "embed_model" not in body and body["temperature"] == 0


def test_an_unknown_client_default_is_a_config_error() -> None:
    with pytest.raises(lm.ConfigError, match=r"max_tokns=.*max_tokens="):
        make_client(scripted(ok())[0], max_tokns=5)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("timeout", "x", "timeout must be a positive number"),
        ("timeout", -1, "timeout must be a positive number"),
        ("max_tokens", -5, "max_tokens must be a whole number of at least 1"),
        ("temperature", 5, "temperature must be a number from 0 to 2"),
        ("top_p", "high", "top_p must be a number from 0 to 1"),
    ],
)
def test_a_bad_option_value_is_a_config_error_before_anything_is_sent(
    option: str, value: Any, message: str
) -> None:
    handler, seen = scripted(ok())
    client, _ = make_client(handler)
    with pytest.raises(lm.ConfigError, match=message):
        client.chat("hi", **{option: value})
    with pytest.raises(lm.ConfigError, match=message):
        list(client.stream("hi", **{option: value}))
    assert seen == []


def test_an_empty_prompt_is_a_config_error_not_empty_content() -> None:
    handler, seen = scripted(ok())
    client, _ = make_client(handler)
    for empty in ("", [], [""]):
        with pytest.raises(lm.ConfigError, match="the prompt is empty"):
            client.chat(empty)
    assert seen == []


def test_a_list_of_strings_is_sent_as_separate_lines_not_glued_together() -> None:
    handler, seen = scripted(ok())
    client, _ = make_client(handler)
    client.chat(["Hello", "world"])
    assert json.loads(seen[0].content)["messages"][-1]["content"] == "Hello\nworld"


# --- timeouts and retries (cases 6 and 8 of the hardening issue) ---------------------------


def test_a_stream_timeout_is_an_llm_timeout_error_with_a_message() -> None:
    async def slow(request: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(5)
        return ok()

    client, _ = make_client(slow, retries=0)
    with pytest.raises(lm.TimeoutError) as info:
        list(client.stream("hi", timeout=0.2))
    assert isinstance(info.value, lm.LLMError)
    assert "did not answer within 0.2 s" in str(info.value)


def test_timeout_bounds_the_whole_call_with_its_retries_and_says_so() -> None:
    async def slow(request: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(5)
        return ok()

    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(seconds)

    client = lm.client(
        "openai:m",
        api_key=KEY,
        transport=httpx2.MockTransport(slow),
        cache=False,
        retry=RetryPolicy(max_retries=5, backoff_base=0.05, sleep=sleep),
    )
    started = time.perf_counter()
    with pytest.raises(lm.TimeoutError) as info:
        client.chat("hi", timeout=0.5)
    took = time.perf_counter() - started
    assert took < 1.0, f"timeout=0.5 took {took:.2f} s"
    assert "within timeout=0.5 s" in str(info.value)


def test_the_default_is_two_retries_of_a_server_error_as_in_the_official_sdks() -> None:
    assert RetryPolicy().max_retries == 2
    handler, seen = scripted(httpx2.Response(500, json={"error": {"message": "deterministic"}}))
    client, _ = make_client(handler, retries=RetryPolicy().max_retries)
    with pytest.raises(lm.ProviderError):
        client.chat("hi")
    assert len(seen) == 3


def test_each_retry_is_announced_with_its_reason_and_wait(caplog: pytest.LogCaptureFixture) -> None:
    handler, _ = scripted(httpx2.Response(503, text="busy"), ok())
    client, _ = make_client(handler)
    with caplog.at_level("INFO", logger="llm_magics"):
        client.chat("hi")
    assert any(
        "openai returned HTTP 503; retry 1 of 4" in record.getMessage() for record in caplog.records
    )


def test_a_streamed_answer_that_fails_its_schema_raises_output_parse_error_at_the_end() -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str

    events = [
        {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": "not json"}, "finish_reason": None}]},
        {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]  # fmt: skip
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    handler, _ = scripted(
        httpx2.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})
    )
    client, _ = make_client(handler, retries=0)
    stream = client.stream("hi", schema=City)
    with pytest.raises(lm.OutputParseError) as info:
        list(stream)
    assert info.value.text == "not json" and stream.text == "not json"


def test_a_connect_timeout_inside_a_long_timeout_is_retried_not_final() -> None:
    handler, seen = scripted(httpx2.ConnectTimeout("slow to connect"), ok("made it"))
    client, _ = make_client(handler, retries=2)
    assert client.chat("hi", timeout=60).text == "made it"
    assert len(seen) == 2


def test_an_odd_event_mid_stream_keeps_the_text_that_arrived() -> None:
    good = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": "Half an"}, "finish_reason": None}]}  # fmt: skip
    body = f"data: {json.dumps(good)}\n\ndata: {json.dumps({'choices': 'odd'})}\n\n"
    handler, _ = scripted(
        httpx2.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})
    )
    client, _ = make_client(handler, retries=0)
    with pytest.raises(lm.StreamInterruptedError) as info:
        list(client.stream("hi"))
    assert info.value.partial_text == "Half an"
    assert isinstance(info.value.__cause__, lm.ProviderError)
