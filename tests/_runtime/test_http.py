"""The HTTP boundary: Retry-After parsing and the translation of error responses into the
exception tree (status, provider error bodies, context-length wording, secrets kept out)."""

from __future__ import annotations

import email.utils

import httpx2
import pytest

import llm_magics as lm
from llm_magics._runtime.http_errors import ErrorContext, error_from_response, parse_retry_after
from llm_magics._runtime.retry import RetryPolicy

NOW = 1_800_000_000.0


def clock() -> float:
    return NOW


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the precise one wins
        ({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"x-ratelimit-reset-requests": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-tokens": "20ms"}, 0.02),
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "2.5s"}, 2.5),
        ({"x-ratelimit-reset": str(int(NOW + 12))}, 12.0),
        ({"anthropic-ratelimit-requests-reset": "2027-01-15T08:00:10Z"}, None),  # checked below
        ({}, None),
        ({"retry-after": "soon"}, None),
    ],
)
def test_retry_after_is_read_from_every_header_form(
    headers: dict[str, str], expected: float | None
) -> None:
    got = parse_retry_after(headers, now=clock)
    if "anthropic-ratelimit-requests-reset" in headers:
        assert got is not None and got >= 0
        return
    assert got == pytest.approx(expected) if expected is not None else got is None


def test_rfc3339_reset_timestamps_count_from_now() -> None:
    from datetime import datetime, timezone

    stamp = datetime.fromtimestamp(NOW + 42, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    assert parse_retry_after(
        {"anthropic-ratelimit-tokens-reset": stamp}, now=clock
    ) == pytest.approx(42)


def _response(
    status: int, body: object = None, headers: dict[str, str] | None = None, text: str | None = None
) -> httpx2.Response:
    request = httpx2.Request("POST", "https://api.example.test/v1/chat/completions")
    if text is not None:
        return httpx2.Response(status, text=text, headers=headers, request=request)
    return httpx2.Response(status, json=body, headers=headers, request=request)


CTX = ErrorContext("openai", "gpt-4o-mini", key_env="OPENAI_API_KEY", key_hint="WXYZ")


def test_401_is_an_authentication_error_that_names_the_env_var_and_only_the_key_tail() -> None:
    exc = error_from_response(
        _response(
            401,
            {
                "error": {
                    "message": "Incorrect API key provided: sk-abc***WXYZ",
                    "code": "invalid_api_key",
                }
            },
        ),
        CTX,
    )
    assert isinstance(exc, lm.AuthenticationError)
    assert exc.status_code == 401
    assert "OPENAI_API_KEY" in str(exc) and "...WXYZ" in str(exc)
    assert exc.response is not None and exc.request is not None


def test_403_is_an_authentication_error_too() -> None:
    assert isinstance(
        error_from_response(_response(403, {"error": {"message": "forbidden"}}), CTX),
        lm.AuthenticationError,
    )


def test_429_is_a_rate_limit_error_carrying_retry_after() -> None:
    exc = error_from_response(
        _response(429, {"error": {"message": "slow down"}}, {"retry-after": "3"}), CTX
    )
    assert isinstance(exc, lm.RateLimitError)
    assert exc.retry_after == 3.0
    assert "slow down" in str(exc) and "3.0 s" in str(exc)


@pytest.mark.parametrize(
    "body",
    [
        {
            "error": {
                "message": "This model's maximum context length is 128000 tokens.",
                "code": "context_length_exceeded",
            }
        },
        {
            "error": {
                "type": "invalid_request_error",
                "message": "prompt is too long: 210000 tokens > 200000 maximum",
            }
        },
        {
            "error": {
                "code": 400,
                "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
                "status": "INVALID_ARGUMENT",
            }
        },
        {"error": "input length exceeds the context length"},
    ],
)
def test_context_length_errors_are_recognised_in_each_providers_wording(body: object) -> None:
    exc = error_from_response(_response(400, body), CTX)
    assert isinstance(exc, lm.ContextLengthError)
    assert isinstance(exc, lm.BadRequestError)
    assert "Shorten the prompt" in str(exc)


def test_413_payload_too_large_with_token_wording_is_a_context_error() -> None:
    exc = error_from_response(
        _response(413, {"error": {"message": "Request too large: too many tokens"}}), CTX
    )
    assert isinstance(exc, lm.ContextLengthError)


def test_404_for_a_model_is_model_not_found_and_also_unknown_model() -> None:
    exc = error_from_response(
        _response(
            404,
            {"error": {"message": "The model `gpt-9` does not exist", "code": "model_not_found"}},
        ),
        CTX,
    )
    assert isinstance(exc, lm.ModelNotFoundError)
    assert isinstance(exc, lm.UnknownModelError) and isinstance(exc, lm.BadRequestError)
    assert "%llm models openai" in str(exc)


def test_400_is_a_bad_request_with_the_providers_message() -> None:
    exc = error_from_response(
        _response(400, {"error": {"message": "temperature must be <= 2"}}), CTX
    )
    assert type(exc) is lm.BadRequestError
    assert "temperature must be <= 2" in str(exc)


@pytest.mark.parametrize("status", [500, 502, 503, 529])
def test_server_errors_are_provider_errors_with_the_status(status: int) -> None:
    exc = error_from_response(_response(status, text="upstream exploded"), CTX)
    assert type(exc) is lm.ProviderError
    assert exc.status_code == status and "upstream exploded" in str(exc)


def test_error_repr_is_short_and_keyless() -> None:
    exc = error_from_response(_response(401, {"error": {"message": "bad key"}}), CTX)
    assert repr(exc).startswith("AuthenticationError(")


def test_backoff_grows_is_capped_and_never_undercuts_retry_after() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_max=4.0, random=lambda: 1.0)
    assert [policy.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.delay(0, retry_after=9.0) == 9.0
    jittered = RetryPolicy(backoff_base=1.0, random=lambda: 0.0)
    assert jittered.delay(2) == 2.0  # half of the 4 s cap: jitter never drops below 50 %


def test_timeouts_and_connection_errors_are_also_builtin_exceptions() -> None:
    # so `except TimeoutError` / `except ConnectionError` in user code catches ours too
    assert issubclass(lm.TimeoutError, TimeoutError)
    assert issubclass(lm.APIConnectionError, ConnectionError)
    assert issubclass(lm.LLMError, Exception) and not issubclass(lm.LLMError, KeyboardInterrupt)


# --- the request the pooled client sends -----------------------------------------------------


def _sent(method: str, json_body: object, headers: dict[str, str]) -> httpx2.Request:
    import asyncio

    from llm_magics._runtime import http

    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"ok": True})

    ctx = ErrorContext("openai", "m")

    async def go() -> None:
        await http.request_json(
            method,
            "https://api.example.com/v1/x",
            ctx=ctx,
            headers=headers,
            json_body=json_body,
            transport=httpx2.MockTransport(handler),
        )

    asyncio.run(go())
    return seen[0]


def test_a_json_request_carries_what_httpx2s_build_request_would_send() -> None:
    headers = {"Authorization": "Bearer sk-x", "Content-Type": "application/json; charset=utf-8"}
    body = {"model": "m", "messages": [{"role": "user", "content": "héllo {json}"}]}
    sent = _sent("POST", body, headers)
    expected = httpx2.AsyncClient().build_request(
        "POST", "https://api.example.com/v1/x", headers=headers, json=body
    )
    assert sent.content == expected.content, "the body is encoded as httpx2 encodes JSON"
    assert dict(sent.headers) == dict(expected.headers), "the same headers, each once"
    assert sent.headers.get_list("content-type") == ["application/json; charset=utf-8"]


def test_a_request_without_a_body_sends_no_body_and_no_content_type() -> None:
    sent = _sent("GET", None, {"x-api-key": "k"})
    assert sent.content == b"" and "content-type" not in sent.headers
    assert sent.headers["x-api-key"] == "k" and sent.headers["user-agent"].startswith("python-")
