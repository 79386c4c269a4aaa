"""HTTP plumbing shared by every provider: one pooled AsyncClient per event loop, timeouts,
JSON requests and streaming requests, SSE and NDJSON parsing. Errors are translated by
:mod:`llm_magics._runtime.http_errors`, the one boundary.

The AsyncClient sends through aiohttp's HTTP stack (:mod:`llm_magics._runtime.aiohttp_transport`,
half the CPU per request of httpx2's pure-Python pool); ``LLM_MAGICS_HTTP=httpx2`` switches
back to httpx2's own pool. Read when a loop's client is made, so set it before the first
request. httpx2 and aiohttp are imported lazily (they cost ~100 ms), so ``import llm_magics``
stays light.

Lifecycle: the pooled clients close cleanly, with no "Unclosed client session": those of a
loop run by ``asyncio.run`` when it shuts down its async generators, the others at exit.

Thread safety: :func:`get_client` may be called from any thread; each event loop gets its own
AsyncClient (an AsyncClient must not be shared across loops).
"""

from __future__ import annotations

import asyncio
import atexit
import builtins
import contextlib
import functools
import json
import os
import sys
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .._core import errors
from .._core.settings import load_dotenv_once
from .http_errors import ErrorContext, error_from_response, translate_transport_errors

if TYPE_CHECKING:
    import httpx2

T = TypeVar("T")

__all__ = [
    "Timeouts",
    "decode_event",
    "get_client",
    "iter_ndjson",
    "iter_sse",
    "request_json",
    "stream_request",
]


@dataclass(frozen=True)
class Timeouts:
    """connect: to open a connection; total: a whole non-streaming request; idle: the longest
    silence allowed inside a stream (and per read otherwise)."""

    connect: float = 10.0
    total: float = 120.0
    idle: float = 60.0

    def replace(self, total: float | None) -> Timeouts:
        if total is None:
            return self
        return Timeouts(min(self.connect, total), total, min(self.idle, total))


# ---------------------------------------------------------------------------------------------
# Shared clients


# Enough sockets for concurrency 64 x a few hosts, with keep-alive long enough to survive the
# gaps between cells; the same on either stack.
_MAX_CONNECTIONS = 256
_KEEPALIVE_EXPIRY = 60.0


@dataclass(frozen=True)
class _Pool:
    """A loop's pooled client, and the transport to hand requests to directly (None: send
    through the client, whose proxy mounts then choose the transport)."""

    client: httpx2.AsyncClient
    direct: Any
    defaults: tuple[tuple[str, str], ...]  # the client's default headers, and JSON's type


_clients_lock = threading.Lock()
# (loop, transport, pool) of the last lookup; the loop by weak reference so a finished
# loop (asyncio.run in a script) can still be collected.
_last_pool: tuple[weakref.ref[asyncio.AbstractEventLoop], Any, _Pool] | None = None
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _Pool]] = (
    weakref.WeakKeyDictionary()
)


def get_client(transport: Any = None) -> httpx2.AsyncClient:
    """The pooled AsyncClient of the running loop (one per transport, for tests)."""
    return _pool(transport).client


def _pool(transport: Any) -> _Pool:
    loop = asyncio.get_running_loop()
    # Fast path: the same loop and transport as last time (every request of a batch).
    last = _last_pool
    if (
        last is not None
        and last[0]() is loop
        and last[1] is transport
        and not last[2].client.is_closed
    ):
        return last[2]
    return _pool_slow(loop, transport)


def _pool_slow(loop: asyncio.AbstractEventLoop, transport: Any) -> _Pool:
    global _last_pool
    import httpx2

    with _clients_lock:
        per_loop = _pools.setdefault(loop, {})
        key = id(transport)
        pool = per_loop.get(key)
        if pool is None or pool.client.is_closed:
            direct = transport
            if transport is None and _backend() == "aiohttp":
                from .aiohttp_transport import AiohttpTransport

                direct = AiohttpTransport(
                    max_connections=_MAX_CONNECTIONS, keepalive_expiry=_KEEPALIVE_EXPIRY
                )
            client = httpx2.AsyncClient(
                transport=direct,
                limits=httpx2.Limits(
                    max_connections=_MAX_CONNECTIONS,
                    max_keepalive_connections=_MAX_CONNECTIONS // 2,
                    keepalive_expiry=_KEEPALIVE_EXPIRY,
                ),
                timeout=httpx2.Timeout(60.0, connect=10.0),
                follow_redirects=False,
                trust_env=True,
            )
            defaults = (*client.headers.items(), ("content-type", "application/json"))
            pool = per_loop[key] = _Pool(client, direct, defaults)
            if transport is None:  # ours (a caller's own transport is the caller's to close)
                _POOLED.track(loop, client)
        _last_pool = (weakref.ref(loop), transport, pool)
        return pool


_BACKENDS = ("aiohttp", "httpx2")


def _backend() -> str:
    """Which HTTP stack sends: ``LLM_MAGICS_HTTP`` (aiohttp unless it says httpx2)."""
    load_dotenv_once()
    chosen = os.environ.get("LLM_MAGICS_HTTP", "").strip().lower() or "aiohttp"
    if chosen not in _BACKENDS:
        raise errors.ConfigError(
            f"LLM_MAGICS_HTTP must be aiohttp (the default) or httpx2; got {chosen!r}"
        )
    if chosen == "aiohttp":
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            if os.environ.get("LLM_MAGICS_HTTP"):
                raise errors.ConfigError(
                    "LLM_MAGICS_HTTP=aiohttp, but aiohttp is not installed: pip install aiohttp"
                ) from None
            return "httpx2"
    return chosen


async def _close_with_the_loop(client: httpx2.AsyncClient) -> AsyncGenerator[None, None]:
    # Suspended at its yield until the loop shuts down its async generators (asyncio.run
    # does, before closing the loop), which runs the finally on the live loop.
    try:
        yield
    finally:
        await client.aclose()


async def _first_step(agen: AsyncIterator[None]) -> None:
    await agen.__anext__()


class _PooledClients:
    """The pooled clients made here, so each is closed on its own loop (an unclosed one
    leaves "Unclosed client session" or "unclosed transport" warnings at exit)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: list[tuple[weakref.ref[asyncio.AbstractEventLoop], httpx2.AsyncClient, Any]] = []

    def track(self, loop: asyncio.AbstractEventLoop, client: httpx2.AsyncClient) -> None:
        closer = _close_with_the_loop(client)
        # Its first step registers it with the loop's async generators (a task so that this
        # stays a plain function); the strong reference below keeps it until then.
        started = loop.create_task(_first_step(closer))
        with self.lock:
            self.open = [e for e in self.open if not e[1].is_closed]
            self.open.append((weakref.ref(loop), client, (closer, started)))

    def close_all(self, timeout: float = 5.0) -> None:
        """At exit: close every client still open whose loop can still run it."""
        with self.lock:
            entries, self.open = self.open, []
        for loop_ref, client, (closer, _) in entries:
            loop = loop_ref()
            if client.is_closed or loop is None or loop.is_closed():
                continue
            with contextlib.suppress(Exception):
                if loop.is_running():
                    future = asyncio.run_coroutine_threadsafe(closer.aclose(), loop)
                    future.result(timeout)
                else:
                    loop.run_until_complete(closer.aclose())


_POOLED = _PooledClients()
atexit.register(_POOLED.close_all)


@functools.lru_cache(maxsize=256)
def _parsed_url(url: str) -> httpx2.URL:
    """An endpoint's URL parsed once: a provider asks the same few endpoints again and again,
    and parsing one is a tenth of the client's CPU per request. (No key travels in a URL.)"""
    import httpx2

    return httpx2.URL(url)


@functools.lru_cache(maxsize=64)
def _httpx_timeout(t: Timeouts) -> httpx2.Timeout:
    import httpx2

    return httpx2.Timeout(t.idle, connect=t.connect, pool=t.total)


@functools.lru_cache(maxsize=64)
def _timeout_extension(t: Timeouts) -> dict[str, float | None]:
    return _httpx_timeout(t).as_dict()  # read, never written, by transports


def _json_request(
    pool: _Pool,
    method: str,
    url: str,
    headers: Mapping[str, str] | None,
    json_body: Any,
    timeout: Timeouts,
) -> httpx2.Request:
    """The request ``client.build_request(json=...)`` would make, for a third of its CPU: the
    pooled client has no base URL, cookies, params or auth to merge in, only its default
    headers. The body is encoded as httpx2 encodes JSON."""
    import httpx2

    given = list(headers.items()) if headers else []
    named = {k.lower() for k, _ in given}
    content = None
    if json_body is None:  # a GET: no body, so no content type either
        named.add("content-type")
    else:
        text = json.dumps(json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        content = text.encode("utf-8")
    return httpx2.Request(
        method,
        _parsed_url(url),
        headers=[*((k, v) for k, v in pool.defaults if k not in named), *given],
        content=content,
        extensions={"timeout": _timeout_extension(timeout)},
    )


async def _send(pool: _Pool, request: httpx2.Request, *, stream: bool) -> httpx2.Response:
    """``client.send`` without the layers the package never uses (auth flows, redirects,
    cookies, event hooks) when the pool's transport is known; through the client otherwise
    (httpx2's own pool, whose proxy mounts pick the transport per URL)."""
    if pool.direct is None:
        return await pool.client.send(request, stream=stream)
    response = await pool.direct.handle_async_request(request)
    response.request = request
    if not stream:
        try:
            await response.aread()
        except BaseException:
            await response.aclose()
            raise
    return response


async def _within(awaitable: Awaitable[T], seconds: float, ctx: ErrorContext) -> T:
    """Bound one attempt; running out of time is our TimeoutError. asyncio.timeout (3.11+)
    costs no extra task per request, which matters at hundreds of requests per second; 3.10
    falls back to wait_for."""
    try:
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(seconds):
                return await awaitable
        return await asyncio.wait_for(awaitable, seconds)
    # asyncio.TimeoutError is the builtin on 3.11+, a class of its own on 3.10.
    except (builtins.TimeoutError, asyncio.TimeoutError) as exc:
        if isinstance(exc, errors.LLMError):
            raise
        raise errors.TimeoutError(
            f"{ctx.provider} did not answer within {seconds:g} s. Raise timeout= or try again.",
            provider=ctx.provider,
            model=ctx.model,
        ) from exc


# ---------------------------------------------------------------------------------------------
# Requests


async def request_json(
    method: str,
    url: str,
    *,
    ctx: ErrorContext,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    params: Mapping[str, str] | None = None,
    files: Any = None,
    data: Mapping[str, Any] | None = None,
    timeout: Timeouts = Timeouts(),
    transport: Any = None,
    expect_json: bool = True,
) -> tuple[Any, httpx2.Response]:
    """Send one request; return (parsed body, response). Raises from the error tree."""
    pool = _pool(transport)
    if params is None and files is None and data is None:
        request = _json_request(pool, method, url, headers, json_body, timeout)
    else:  # an upload, or a listing with a query string: rare, so httpx2 builds it
        request = pool.client.build_request(
            method,
            _parsed_url(url),
            headers=headers,
            json=json_body,
            params=params,
            files=files,
            data=data,
            timeout=_httpx_timeout(timeout),
        )
    with translate_transport_errors(ctx):
        response = await _within(_send(pool, request, stream=False), timeout.total, ctx)
    if response.status_code >= 400:
        raise error_from_response(response, ctx)
    if not expect_json:
        return response.text, response
    try:
        return response.json(), response
    except ValueError as exc:
        raise errors.ProviderError(
            f"{ctx.provider} returned a body that is not JSON (HTTP {response.status_code}): "
            f"{response.text[:200]!r}",
            status_code=response.status_code,
            provider=ctx.provider,
            model=ctx.model,
            request=response.request,
            response=response,
        ) from exc


@contextlib.asynccontextmanager
async def stream_request(
    method: str,
    url: str,
    *,
    ctx: ErrorContext,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    params: Mapping[str, str] | None = None,
    timeout: Timeouts = Timeouts(),
    transport: Any = None,
) -> AsyncIterator[httpx2.Response]:
    """Open a streaming request; error statuses raise before anything is yielded."""
    pool = _pool(transport)
    if params is None:
        request = _json_request(pool, method, url, headers, json_body, timeout)
    else:
        request = pool.client.build_request(
            method,
            _parsed_url(url),
            headers=headers,
            json=json_body,
            params=params,
            timeout=_httpx_timeout(timeout),
        )
    with translate_transport_errors(ctx):
        response = await _within(_send(pool, request, stream=True), timeout.total, ctx)
    try:
        if response.status_code >= 400:
            with translate_transport_errors(ctx):
                raw = await response.aread()
            raise error_from_response(response, ctx, body_text=raw.decode("utf-8", "replace"))
        yield response
    finally:
        await response.aclose()


async def iter_lines(
    response: httpx2.Response, ctx: ErrorContext, partial: Callable[[], str]
) -> AsyncIterator[str]:
    with translate_transport_errors(ctx, partial=partial):
        async for line in response.aiter_lines():
            yield line


async def iter_sse(
    response: httpx2.Response, ctx: ErrorContext, partial: Callable[[], str]
) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) pairs of a server-sent-event stream; tolerant of CRLF and of
    servers that send ``data:`` without a space."""
    event, data_lines = "", list[str]()
    async for line in iter_lines(response, ctx, partial):
        if not line:
            if data_lines:
                yield event or "message", "\n".join(data_lines)
            event, data_lines = "", list[str]()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data_lines.append(value)
        elif name == "event":
            event = value
    if data_lines:
        yield event or "message", "\n".join(data_lines)


async def iter_ndjson(
    response: httpx2.Response, ctx: ErrorContext, partial: Callable[[], str]
) -> AsyncIterator[Any]:
    async for line in iter_lines(response, ctx, partial):
        if line.strip():
            yield decode_event(line, ctx)


def decode_event(data: str, ctx: ErrorContext) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise errors.ProviderError(
            f"{ctx.provider} sent a stream event that is not JSON: {data[:200]!r}",
            provider=ctx.provider,
            model=ctx.model,
        ) from exc
