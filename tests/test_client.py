"""Client behaviour that is the same for every provider: retries with backoff that never
undercut Retry-After, stream retries before the first token, clear errors for timeouts,
resets, malformed bodies and streams cut mid-way, and keys that never leak.

Faults are injected with httpx2.MockTransport; the wire format itself is proven against the
specs in tests/providers/."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import pytest

import llm_magics as lm
from llm_magics._http import RetryPolicy
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
