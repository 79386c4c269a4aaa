"""httpx2's transport interface over aiohttp's HTTP stack: the httpx2 API on top, aiohttp's
C-accelerated parser and connection pool underneath, which halves the client CPU per request.

The package speaks httpx2 everywhere (requests, responses, streaming, the error boundary in
:mod:`llm_magics._runtime.http_errors`); only this module knows aiohttp. Its job is the one a
transport has in httpx2: send an ``httpx2.Request``, return an ``httpx2.Response`` whose body
streams from the socket, and raise httpx2's own exceptions, each aiohttp failure as the httpx2
class that means the same thing (so a dropped connection is a ``RemoteProtocolError``, never a
connect timeout).

Why not the maintained ``httpx-aiohttp`` (which has an httpx2 variant): its exception table
maps ``ServerDisconnectedError`` and ``ClientOSError`` (a connection reset) to
``ConnectTimeout``, which would tell a user the server was never reached when it was; importing
it imports the original ``httpx`` too; and proxies from the environment need aiohttp's
``trust_env``, which costs two thread hops per request (netrc and proxy lookups). This adapter
reads the proxy settings once per transport, as httpx2 does.

Bodies are passed through undecoded (``auto_decompress=False``): httpx2 decodes
``Content-Encoding`` itself, so a corrupt gzip body fails the same way on both transports.

Thread and loop safety: a transport belongs to one event loop (an aiohttp session must not be
shared across loops); :mod:`llm_magics._runtime.http` keeps one per loop. Its session opens on
the first request, inside that loop, and closes with :meth:`aclose`.
"""

from __future__ import annotations

import asyncio
import functools
import urllib.request
from collections.abc import AsyncIterator

import aiohttp
import httpx2

__all__ = ["FAILURES", "AiohttpTransport", "as_httpx_error"]

# Request headers aiohttp computes itself from the body it sends.
_COMPUTED = frozenset({b"content-length", b"transfer-encoding"})

# aiohttp failures, most specific first, as the httpx2 exception that means the same.
_EXCEPTIONS: tuple[tuple[type[BaseException], type[httpx2.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx2.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx2.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx2.ReadTimeout),
    (aiohttp.ClientProxyConnectionError, httpx2.ProxyError),
    (aiohttp.ClientHttpProxyError, httpx2.ProxyError),
    (aiohttp.ClientConnectorError, httpx2.ConnectError),  # refused, DNS, TLS handshake
    (aiohttp.ServerFingerprintMismatch, httpx2.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx2.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx2.RemoteProtocolError),  # a body cut short or malformed
    (aiohttp.ClientResponseError, httpx2.RemoteProtocolError),  # an unreadable status or header
    (aiohttp.NonHttpUrlClientError, httpx2.UnsupportedProtocol),
    (aiohttp.InvalidURL, httpx2.UnsupportedProtocol),
    (aiohttp.UploadAbortedError, httpx2.WriteError),
    (aiohttp.ClientOSError, httpx2.ReadError),  # a connection reset while reading or writing
    (aiohttp.ClientConnectionError, httpx2.NetworkError),
    (aiohttp.ClientError, httpx2.TransportError),
    (TimeoutError, httpx2.ReadTimeout),
)
FAILURES = (aiohttp.ClientError, TimeoutError)


def as_httpx_error(exc: BaseException, request: httpx2.Request) -> httpx2.TransportError:
    """The httpx2 exception that ``exc`` (an aiohttp failure) means."""
    mapped = next((to for kind, to in _EXCEPTIONS if isinstance(exc, kind)), httpx2.TransportError)
    # A ClientResponseError carries the request's headers (the API key among them).
    if isinstance(exc, aiohttp.ClientResponseError) and exc.request_info is not None:
        from multidict import CIMultiDict, CIMultiDictProxy

        no_headers = CIMultiDictProxy(CIMultiDict[str]())
        exc.request_info = exc.request_info._replace(headers=no_headers)
    return mapped(
        f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, request=request
    )


@functools.lru_cache(maxsize=64)
def _timeout(
    connect: float | None, read: float | None, pool: float | None
) -> aiohttp.ClientTimeout:
    # httpx2's pool timeout bounds the wait for a free connection plus connecting; aiohttp's
    # ``connect`` is exactly that. The total is bounded by the caller (http._within).
    return aiohttp.ClientTimeout(total=None, connect=pool, sock_connect=connect, sock_read=read)


class _Proxies:
    """The proxies of the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``,
    ``NO_PROXY``), read once, with each host's answer remembered."""

    def __init__(self) -> None:
        self.by_scheme = urllib.request.getproxies_environment()
        self.decided: dict[tuple[str, str], str | None] = {}

    def for_url(self, url: httpx2.URL) -> str | None:
        if not self.by_scheme:
            return None
        key = (url.scheme, url.netloc.decode("ascii"))
        if key not in self.decided:
            proxy = self.by_scheme.get(url.scheme) or self.by_scheme.get("all")
            # NO_PROXY as urllib reads it (a CPython function typeshed does not list).
            bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
            if proxy and bypass(key[1], self.by_scheme):
                proxy = None
            if proxy and "://" not in proxy:
                proxy = "http://" + proxy
            self.decided[key] = proxy or None
        return self.decided[key]


class _AiohttpBody(httpx2.AsyncByteStream):
    """A response body read from aiohttp as the bytes arrive (an SSE event is not held back
    waiting for a full buffer)."""

    __slots__ = ("_request", "_response")

    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except FAILURES as exc:
            self._response.close()
            raise as_httpx_error(exc, self._request) from exc

    async def aclose(self) -> None:
        # A body read to the end gives its connection back to the pool; one left half-read
        # is closed (aiohttp decides by whether the payload reached its end).
        self._response.release()


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport that sends through one pooled ``aiohttp.ClientSession``."""

    def __init__(self, *, max_connections: int = 256, keepalive_expiry: float = 60.0) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None
        self._proxies = _Proxies()

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_expiry,
            ttl_dns_cache=300,
            # httpx2's trust store (certifi, SSL_CERT_FILE / SSL_CERT_DIR), so both transports
            # accept the same servers.
            ssl=httpx2.create_ssl_context(trust_env=True),
        )
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx2 keeps the cookies
            timeout=aiohttp.ClientTimeout(total=None),
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Accept"),
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        session = self._session
        if session is None or session.closed:
            session = self._session = self._open()
        try:
            body: bytes | None = request.content
        except httpx2.RequestNotRead:
            body = await request.aread()  # a multipart upload: its length is known
        # The raw bytes, decoded once (the str views of httpx2's Headers re-decode per access).
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in request.headers.raw
            if k.lower() not in _COMPUTED
        ]
        timeout = request.extensions.get("timeout", {})
        try:
            response = await session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=_timeout(timeout.get("connect"), timeout.get("read"), timeout.get("pool")),
                proxy=self._proxies.for_url(request.url),
            )
        except FAILURES as exc:
            raise as_httpx_error(exc, request) from exc
        return httpx2.Response(
            response.status,
            headers=response.raw_headers,
            stream=_AiohttpBody(response, request),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode(),
            },
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()
            # One loop turn, so the closed sockets' connection_lost callbacks run before a
            # loop that is shutting down closes.
            await asyncio.sleep(0)
