"""HTTP plumbing shared by every provider: timeouts, JSON requests and streaming requests,
SSE and NDJSON parsing, over the pooled client of the running loop
(:mod:`llm_magics._runtime.pool`). Errors are translated by
:mod:`llm_magics._runtime.http_errors`, the one boundary.

The pool sends through aiohttp's HTTP stack (:mod:`llm_magics._runtime.aiohttp_transport`,
half the CPU per request of httpx2's pure-Python pool); ``LLM_MAGICS_HTTP=httpx2`` switches
back to httpx2's own pool. A JSON request is made directly (not by ``client.build_request``)
and handed straight to a known transport: the package uses no auth flows, redirects, cookies
or event hooks, and those layers cost a fifth of the client's CPU per request. httpx2 and
aiohttp are imported lazily (they cost ~100 ms), so ``import llm_magics`` stays light.

Thread safety: the functions may be called from any thread's event loop; each loop has its
own pooled client.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .._core import errors
from .http_errors import ErrorContext, error_from_response, translate_transport_errors
from .pool import Pool, get_client, pool_for

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
    pool: Pool,
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


async def _send(pool: Pool, request: httpx2.Request, *, stream: bool) -> httpx2.Response:
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
    pool = pool_for(transport)
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
    pool = pool_for(transport)
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
