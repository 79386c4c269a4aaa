"""The aiohttp transport under the httpx2 API: the default, switchable back to httpx2's pool,
the same behaviour on both over real sockets (answers, SSE streams, silence, cut bodies,
dropped connections, multipart uploads, proxies), every aiohttp exception mapped at the one
boundary, and a clean shutdown in scripts."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import aiohttp
import httpx2
import pytest

import llm_magics as lm
from llm_magics._client import registry
from llm_magics._core import errors
from llm_magics._runtime import http as _http
from llm_magics._runtime.aiohttp_transport import AiohttpTransport, as_httpx_error
from llm_magics._runtime.http import Timeouts
from llm_magics._runtime.http_errors import ErrorContext, translate_transport_errors
from tests.support.raw_server import RawRequest, RawServer, chat_json, respond, sse_chunk, sse_head

KEY = "sk-raw-0123456789abcdef0123"
BACKENDS = ["aiohttp", "httpx2"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LLM_MAGICS_HTTP", request.param)
    return str(request.param)


def client_at(srv: RawServer, **options: Any) -> lm.Client:
    lm.register("raw", srv.base_url, api_key=KEY)
    return lm.client("raw:m", cache=False, max_retries=0, **options)


def in_fresh_loop(make: Callable[[], Any]) -> Any:
    """Run a coroutine in a loop of its own (so its pooled client reads LLM_MAGICS_HTTP now)."""

    async def main() -> Any:
        return await make()

    return asyncio.run(main())


def transport_of_a_fresh_loop() -> Any:
    async def grab() -> Any:
        return _http.get_client()._transport  # type: ignore[attr-defined]

    return asyncio.run(grab())


# --- which stack sends --------------------------------------------------------------------


def test_aiohttp_sends_by_default_and_llm_magics_http_switches_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LLM_MAGICS_HTTP", raising=False)
    assert isinstance(transport_of_a_fresh_loop(), AiohttpTransport)
    monkeypatch.setenv("LLM_MAGICS_HTTP", "httpx2")
    assert isinstance(transport_of_a_fresh_loop(), httpx2.AsyncHTTPTransport)


def test_an_unknown_llm_magics_http_is_a_config_error_naming_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_MAGICS_HTTP", "curl")
    with pytest.raises(
        errors.ConfigError, match=r"LLM_MAGICS_HTTP must be aiohttp .* or httpx2; got 'curl'"
    ):
        transport_of_a_fresh_loop()


def test_the_aiohttp_pool_has_the_same_deliberate_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLM_MAGICS_HTTP", raising=False)

    async def limits() -> tuple[int, float]:
        transport = _http.get_client()._transport  # type: ignore[attr-defined]
        session = transport._open()
        try:
            return session.connector.limit, session.connector._keepalive_timeout  # type: ignore[union-attr]
        finally:
            await session.close()

    assert asyncio.run(limits()) == (256, 60.0)


def test_one_session_per_loop_reused_by_every_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLM_MAGICS_HTTP", raising=False)

    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        respond(writer, 200, chat_json("ok"), Content_Type="application/json")

    with RawServer(handler) as srv:
        client = client_at(srv)

        async def three() -> set[int]:
            seen = set()
            for _ in range(3):
                await client.achat("hi")
                seen.add(id(_http.get_client()._transport._session))  # type: ignore[attr-defined]
            return seen

        assert len(asyncio.run(three())) == 1
        assert next(client.chat("sync") for _ in range(2)).text == "ok"  # the loop thread
    assert len({r.headers.get("host") for r in srv.requests}) == 1


# --- the same behaviour on both stacks, over real sockets ---------------------------------


def test_a_json_answer_arrives_with_the_request_sent_as_httpx2_built_it(backend: str) -> None:
    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        respond(writer, 200, chat_json("hello back"), Content_Type="application/json")

    with RawServer(handler) as srv:
        answer = in_fresh_loop(lambda: client_at(srv).achat("hello", max_tokens=5))
    assert answer.text == "hello back" and answer.usage.output_tokens == 2
    sent = srv.requests[0]
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert int(sent.headers["content-length"]) == len(sent.body)
    assert sent.json()["messages"][-1]["content"] == "hello"


def test_a_gzip_answer_is_decoded_once_and_a_corrupt_one_is_a_provider_error(backend: str) -> None:
    import gzip

    bodies = [gzip.compress(chat_json("zipped")), b"\x1f\x8b not gzip at all"]

    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        respond(
            writer, 200, bodies.pop(0), Content_Type="application/json", Content_Encoding="gzip"
        )

    with RawServer(handler) as srv:
        assert in_fresh_loop(lambda: client_at(srv).achat("a")).text == "zipped"
        with pytest.raises(errors.ProviderError, match="cannot be decoded"):
            in_fresh_loop(lambda: client_at(srv).achat("b"))


def test_an_sse_stream_arrives_piece_by_piece_as_it_is_sent(backend: str) -> None:
    gate = asyncio.Event()

    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(sse_head() + sse_chunk("first "))
        await writer.drain()
        await asyncio.sleep(0.3)  # the client must see "first " before this ends
        writer.write(sse_chunk("second") + b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")
        gate.set()

    with RawServer(handler) as srv:
        client = client_at(srv)

        async def read() -> list[tuple[str, bool]]:
            seen = []
            async for piece in client.astream("go"):
                if isinstance(piece, str):
                    seen.append((piece, gate.is_set()))
            return seen

        pieces = in_fresh_loop(read)
    assert pieces[0] == ("first ", False), "the first piece arrived before the server went on"
    assert "".join(p for p, _ in pieces) == "first second"


def test_a_stream_silent_past_the_idle_timeout_keeps_what_arrived(backend: str) -> None:
    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(sse_head() + sse_chunk("partial "))
        await writer.drain()
        await asyncio.sleep(3)

    registry.current_registry().timeouts = Timeouts(connect=2.0, total=10.0, idle=0.4)
    with RawServer(handler) as srv:
        client = client_at(srv)

        async def read() -> None:
            async for _ in client.astream("go"):
                pass

        with pytest.raises(errors.StreamInterruptedError) as caught:
            in_fresh_loop(read)
    assert caught.value.partial_text == "partial "
    assert isinstance(caught.value.__cause__, httpx2.ReadTimeout)


def test_an_answer_slower_than_the_total_timeout_is_a_timeout_error(backend: str) -> None:
    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(2)

    with RawServer(handler) as srv, pytest.raises(errors.TimeoutError, match="did not answer"):
        in_fresh_loop(lambda: client_at(srv, timeout=0.4).achat("slow"))


def test_a_stream_whose_connection_drops_mid_body_keeps_the_partial_text(backend: str) -> None:
    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(sse_head() + sse_chunk("half an "))
        await writer.drain()
        writer.transport.abort()  # no terminating chunk: the body is cut

    with RawServer(handler) as srv:
        client = client_at(srv)

        async def read() -> None:
            async for _ in client.astream("go"):
                pass

        with pytest.raises(errors.StreamInterruptedError) as caught:
            in_fresh_loop(read)
    assert caught.value.partial_text == "half an "


def test_a_body_shorter_than_its_length_says_the_connection_broke(backend: str) -> None:
    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{"id":')
        await writer.drain()
        writer.close()

    with (
        RawServer(handler) as srv,
        pytest.raises(errors.APIConnectionError, match="broke before the answer was complete"),
    ):
        in_fresh_loop(lambda: client_at(srv).achat("x"))


def test_a_server_that_closes_without_answering_says_the_connection_broke(backend: str) -> None:
    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.close()

    with (
        RawServer(handler) as srv,
        pytest.raises(errors.APIConnectionError, match="broke before the answer") as caught,
    ):
        in_fresh_loop(lambda: client_at(srv).achat("x"))
    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)


def test_a_refused_connection_says_it_could_not_reach_the_server(backend: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    lm.register("gone", f"http://127.0.0.1:{port}/v1", api_key=KEY)
    client = lm.client("gone:m", cache=False, max_retries=0)
    with pytest.raises(errors.APIConnectionError, match="could not reach gone: ConnectError"):
        in_fresh_loop(lambda: client.achat("x"))


def test_an_unknown_host_says_it_could_not_reach_the_server(backend: str) -> None:
    lm.register("nowhere", "http://no-such-host.invalid/v1", api_key=KEY)
    client = lm.client("nowhere:m", cache=False, max_retries=0)
    with pytest.raises(errors.APIConnectionError, match="could not reach nowhere: ConnectError"):
        in_fresh_loop(lambda: client.achat("x"))


def test_a_429_with_retry_after_is_waited_out_then_answered(backend: str) -> None:
    replies = [(429, b'{"error": {"message": "slow down"}}'), (200, chat_json("after the wait"))]

    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        status, body = replies.pop(0)
        respond(writer, status, body, Content_Type="application/json", Retry_After="0.2")

    with RawServer(handler) as srv:
        lm.register("raw", srv.base_url, api_key=KEY)
        client = lm.client("raw:m", cache=False, max_retries=1)
        answer = in_fresh_loop(lambda: client.achat("x"))
    assert answer.text == "after the wait" and len(srv.requests) == 2


def test_a_multipart_upload_arrives_whole(backend: str) -> None:
    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        respond(
            writer, 200, json.dumps({"text": "hello"}).encode(), Content_Type="application/json"
        )

    audio = lm.Audio([0.25, -0.25] * 8_000, rate=16_000)  # one second, 32 kB of WAV
    with RawServer(handler) as srv:
        lm.register("raw", srv.base_url, api_key=KEY)
        client = lm.client("raw:whisper-1", cache=False, max_retries=0)
        transcript = in_fresh_loop(lambda: client.atranscribe(audio))
    assert transcript == "hello"
    sent = srv.requests[0]
    assert sent.path == "/v1/audio/transcriptions"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert int(sent.headers["content-length"]) == len(sent.body)
    assert b"RIFF" in sent.body and b"WAVE" in sent.body and len(sent.body) > 32_000
    assert b'name="model"' in sent.body


def test_a_proxy_from_the_environment_carries_the_request(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def target(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        respond(writer, 200, chat_json("direct"), Content_Type="application/json")

    async def proxy(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        respond(writer, 200, chat_json("via the proxy"), Content_Type="application/json")

    with RawServer(target) as srv, RawServer(proxy) as forward:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{forward.port}")
        monkeypatch.setenv("NO_PROXY", "")
        assert in_fresh_loop(lambda: client_at(srv).achat("x")).text == "via the proxy"
        assert forward.requests[0].path == f"{srv.base_url}/chat/completions"  # absolute form
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert in_fresh_loop(lambda: client_at(srv).achat("x")).text == "direct"


# --- every aiohttp exception, at the one boundary -----------------------------------------


def _key() -> Any:
    from aiohttp.client_reqrep import ConnectionKey

    return ConnectionKey("example.com", 443, True, True, None, None, None)


def _info() -> Any:
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL

    headers = CIMultiDictProxy(CIMultiDict({"Authorization": f"Bearer {KEY}"}))
    return aiohttp.RequestInfo(URL("http://x/v1"), "POST", headers, URL("http://x/v1"))


# Every exception class aiohttp raises on the client side, made as aiohttp makes it, and what
# a user meets: the LLMError and a phrase of its message.
CASES: dict[str, tuple[Callable[[], BaseException], type[errors.LLMError], str]] = {
    "ClientError": (lambda: aiohttp.ClientError("odd"), errors.APIConnectionError, "broke"),
    "ClientConnectionError": (lambda: aiohttp.ClientConnectionError("x"), errors.APIConnectionError, "broke"),
    "ClientConnectionResetError": (lambda: aiohttp.ClientConnectionResetError("reset"), errors.APIConnectionError, "broke"),
    "ClientOSError": (lambda: aiohttp.ClientOSError(104, "reset by peer"), errors.APIConnectionError, "broke"),
    "ClientConnectorError": (lambda: aiohttp.ClientConnectorError(_key(), OSError(111, "refused")), errors.APIConnectionError, "could not reach"),
    "ClientConnectorDNSError": (lambda: aiohttp.ClientConnectorDNSError(_key(), OSError(-2, "Name or service not known")), errors.APIConnectionError, "could not reach"),
    "ClientProxyConnectionError": (lambda: aiohttp.ClientProxyConnectionError(_key(), OSError(111, "refused")), errors.APIConnectionError, "could not reach"),
    "UnixClientConnectorError": (lambda: aiohttp.client_exceptions.UnixClientConnectorError("/tmp/s", _key(), OSError(2, "no")), errors.APIConnectionError, "could not reach"),
    "ClientSSLError": (lambda: aiohttp.ClientSSLError(_key(), OSError(1, "tls")), errors.APIConnectionError, "could not reach"),
    "ClientConnectorSSLError": (lambda: aiohttp.ClientConnectorSSLError(_key(), OSError(1, "tls")), errors.APIConnectionError, "could not reach"),
    "ClientConnectorCertificateError": (lambda: aiohttp.ClientConnectorCertificateError(_key(), Exception("bad cert")), errors.APIConnectionError, "could not reach"),
    "ServerConnectionError": (lambda: aiohttp.ServerConnectionError("x"), errors.APIConnectionError, "broke"),
    "ServerDisconnectedError": (lambda: aiohttp.ServerDisconnectedError(), errors.APIConnectionError, "broke"),
    "ServerTimeoutError": (lambda: aiohttp.ServerTimeoutError("t"), errors.TimeoutError, "did not answer in time"),
    "ConnectionTimeoutError": (lambda: aiohttp.ConnectionTimeoutError("t"), errors.TimeoutError, "ConnectTimeout"),
    "SocketTimeoutError": (lambda: aiohttp.SocketTimeoutError("t"), errors.TimeoutError, "ReadTimeout"),
    "ServerFingerprintMismatch": (lambda: aiohttp.ServerFingerprintMismatch(b"a", b"b", "h", 443), errors.APIConnectionError, "could not reach"),
    "ClientPayloadError": (lambda: aiohttp.ClientPayloadError("cut"), errors.APIConnectionError, "broke"),
    "ClientResponseError": (lambda: aiohttp.ClientResponseError(_info(), (), status=400, message="bad status line"), errors.APIConnectionError, "broke"),
    "ContentTypeError": (lambda: aiohttp.ContentTypeError(_info(), ()), errors.APIConnectionError, "broke"),
    "WSServerHandshakeError": (lambda: aiohttp.WSServerHandshakeError(_info(), ()), errors.APIConnectionError, "broke"),
    "ClientHttpProxyError": (lambda: aiohttp.ClientHttpProxyError(_info(), (), status=407), errors.APIConnectionError, "could not reach"),
    "TooManyRedirects": (lambda: aiohttp.TooManyRedirects(_info(), ()), errors.APIConnectionError, "broke"),
    "UploadAbortedError": (lambda: aiohttp.UploadAbortedError("aborted"), errors.APIConnectionError, "broke"),
    "InvalidURL": (lambda: aiohttp.InvalidURL("::bad"), errors.ConfigError, "not usable"),
    "InvalidUrlClientError": (lambda: aiohttp.InvalidUrlClientError("::bad"), errors.ConfigError, "not usable"),
    "InvalidUrlRedirectClientError": (lambda: aiohttp.InvalidUrlRedirectClientError("::bad"), errors.ConfigError, "not usable"),
    "RedirectClientError": (lambda: aiohttp.RedirectClientError("x"), errors.APIConnectionError, "broke"),
    "NonHttpUrlClientError": (lambda: aiohttp.NonHttpUrlClientError("ftp://x"), errors.ConfigError, "not usable"),
    "NonHttpUrlRedirectClientError": (lambda: aiohttp.NonHttpUrlRedirectClientError("ftp://x"), errors.ConfigError, "not usable"),
}  # fmt: skip


def _client_exception_classes() -> set[str]:
    found, todo = set(), [aiohttp.ClientError]
    while todo:
        kind = todo.pop()
        if kind.__module__.startswith("aiohttp") and "WSMessage" not in kind.__name__:
            found.add(kind.__name__)
        todo.extend(kind.__subclasses__())
    return found


def test_the_table_covers_every_client_exception_class_aiohttp_has() -> None:
    assert _client_exception_classes() <= set(CASES), "a new aiohttp exception needs a row"


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_aiohttp_exception_becomes_the_llm_error_it_means(name: str) -> None:
    make, expected, phrase = CASES[name]
    exc = make()
    assert type(exc).__name__ == name
    request = httpx2.Request(
        "POST", "http://x/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"}
    )
    ctx = ErrorContext("raw", "m")
    with pytest.raises(expected, match=phrase) as caught, translate_transport_errors(ctx):
        raise as_httpx_error(exc, request) from exc
    assert isinstance(caught.value.__cause__, httpx2.TransportError)
    shown = "".join(
        str(e) + repr(getattr(e, "request_info", ""))
        for e in (caught.value, caught.value.__cause__, exc)
    )
    assert KEY not in shown


def test_a_failing_aiohttp_session_raises_through_the_transport_as_httpx2_errors() -> None:
    class Failing:
        closed = False

        def request(self, *args: Any, **kwargs: Any) -> Any:
            raise aiohttp.ServerDisconnectedError()

    transport = AiohttpTransport()
    transport._session = Failing()  # type: ignore[assignment]
    request = httpx2.Request("POST", "http://x/v1", content=b"{}")
    with pytest.raises(httpx2.RemoteProtocolError, match="ServerDisconnectedError"):
        asyncio.run(transport.handle_async_request(request))


# --- clean shutdown -----------------------------------------------------------------------


SCRIPT = """
import asyncio, gc, sys, warnings
sys.path.insert(0, {root!r})
from tests.support.raw_server import RawServer, respond, chat_json
import llm_magics as lm

async def handler(request, writer):
    respond(writer, 200, chat_json("ok"), Content_Type="application/json")

with RawServer(handler) as srv:
    lm.register("raw", srv.base_url, api_key="sk-raw-0123456789abcdef")
    client = lm.client("raw:m", cache=False)
    {body}
    gc.collect()
print("done")
"""


@pytest.mark.parametrize(
    "body",
    [
        "print(asyncio.run(client.achat('hi')).text)",
        "print(client.chat('hi').text)",
        "print(asyncio.run(client.achat('a')).text, asyncio.run(client.achat('b')).text)",
    ],
    ids=["asyncio.run", "the loop thread", "two asyncio.run"],
)
def test_a_script_exits_without_an_unclosed_session_or_resource_warning(
    body: str, backend: str
) -> None:
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    code = textwrap.dedent(SCRIPT).format(root=root, body=body)
    done = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("done") and "ok" in done.stdout
    for noise in ("Unclosed", "ResourceWarning", "Task was destroyed", "Exception ignored"):
        assert noise not in done.stderr, done.stderr
