"""HTTP plumbing shared by every provider: one pooled AsyncClient per event loop, timeouts,
stream line parsing, Retry-After parsing, and the single place where HTTP statuses, provider
error bodies and transport exceptions become :mod:`llm_magics._errors` exceptions.

httpx2 is imported lazily (it costs ~100 ms), so ``import llm_magics`` stays light.

Thread safety: :func:`get_client` may be called from any thread; each event loop gets its own
AsyncClient (an AsyncClient must not be shared across loops).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import email.utils
import functools
import json
import random
import re
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from . import _errors as errors
from ._secrets import mask_exception

if TYPE_CHECKING:
    import httpx2

T = TypeVar("T")

__all__ = [
    "NOT_UNDERSTOOD",
    "Attempts",
    "ErrorContext",
    "RetryPolicy",
    "Timeouts",
    "error_from_response",
    "get_client",
    "iter_ndjson",
    "iter_sse",
    "not_understood",
    "parse_retry_after",
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


@dataclass
class RetryPolicy:
    """Bounded exponential backoff with full jitter. ``sleep`` and ``random`` are injectable
    so tests never wait for real.

    ``max_retries`` counts retries after 429s, server errors, timeouts and dropped
    connections: 2, as in the official OpenAI and Anthropic SDKs, so a broken server is
    reported within seconds. A 429 that moves the request to another key of the pool is
    rotation, not a retry, and is not counted (see ``Client._after_failure``)."""

    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    sleep: Callable[[float], Awaitable[Any]] = field(default=asyncio.sleep, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based); never less than
        ``retry_after``."""
        cap = min(self.backoff_max, self.backoff_base * (2**attempt))
        jittered = cap * (0.5 + 0.5 * self.random())
        return max(jittered, retry_after or 0.0)


class Attempts:
    """The failed attempts of one call so far: ``retries`` counted against the policy's
    ``max_retries``, ``rotations`` (a 429 that moved to another key) not."""

    __slots__ = ("retries", "rotations")

    def __init__(self) -> None:
        self.retries = 0
        self.rotations = 0

    @property
    def total(self) -> int:
        return self.retries + self.rotations


#: What parsing an answer of an unexpected shape raises (and encoding a prompt that is not
#: valid Unicode: a UnicodeEncodeError is a ValueError).
NOT_UNDERSTOOD = (KeyError, IndexError, TypeError, AttributeError, ValueError)


def not_understood(exc: Exception, provider: str, model: str) -> errors.LLMError:
    """An exception from inside a provider call, as the LLMError it means."""
    if isinstance(exc, UnicodeEncodeError):
        near = exc.object[max(exc.start - 20, 0) : exc.end + 20]
        return errors.ConfigError(
            f"the prompt cannot be sent: it holds {exc.object[exc.start : exc.end]!r} (near "
            f"{near!r}), which is not valid Unicode text (a lone surrogate, often from a bad "
            "decode). Clean it first, e.g. text.encode('utf-8', 'replace').decode().",
            provider=provider,
            model=model,
        )
    return errors.ProviderError(
        f"{provider} answered in a shape llm_magics does not understand "
        f"({type(exc).__name__}: {exc}). If this is a compatible server, it may not implement "
        "this endpoint fully; the raw answer is in the exception's __cause__ chain.",
        provider=provider,
        model=model,
    )


def retry_reason(exc: errors.LLMError) -> str:
    """Why a retry is needed, in a few words (for the announcement of the wait)."""
    who = exc.provider or "the provider"
    if isinstance(exc, errors.RateLimitError):
        asked = f", Retry-After {exc.retry_after:g} s" if exc.retry_after is not None else ""
        return f"{who} rate limit (429{asked})"
    if isinstance(exc, errors.TimeoutError):
        return f"{who} did not answer in time"
    if isinstance(exc, errors.APIConnectionError):
        return f"could not reach {who}"
    status = getattr(exc, "status_code", None)
    return f"{who} returned HTTP {status}" if status else f"{who} failed ({type(exc).__name__})"


RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, errors.RateLimitError | errors.TimeoutError | errors.APIConnectionError):
        return True
    if isinstance(exc, errors.BadRequestError | errors.AuthenticationError):
        return False
    if isinstance(exc, errors.ProviderError) and exc.status_code is not None:
        return exc.status_code in RETRYABLE_STATUS or exc.status_code >= 500
    return False


@dataclass(frozen=True)
class ErrorContext:
    """What an error message needs to be useful: who, which model, which env var holds the
    key, which key (last four characters only), and how the provider words context errors."""

    provider: str
    model: str | None = None
    key_env: str | None = None
    key_hint: str | None = None
    context_markers: tuple[str, ...] = ()
    # Phrases that mark a rejected key reported as 400 (Gemini: INVALID_ARGUMENT, "API key not
    # valid"), so it still becomes AuthenticationError rather than BadRequestError.
    auth_markers: tuple[str, ...] = ()

    def auth_fix(self) -> str:
        which = f" (the key ending in ...{self.key_hint})" if self.key_hint else ""
        if self.key_env:
            return f"Check {self.key_env}{which}: set it to a valid key in the environment or .env."
        return f"Check the API key configured for {self.provider}{which}."


_DEFAULT_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "maximum context",
    "prompt is too long",
    "too many tokens",
    "exceeds the maximum",
    "input is too long",
    "reduce the length",
)


# ---------------------------------------------------------------------------------------------
# Shared clients


_clients_lock = threading.Lock()
# (loop, transport, client) of the last lookup; the loop by weak reference so a finished
# loop (asyncio.run in a script) can still be collected.
_last_client: tuple[weakref.ref[asyncio.AbstractEventLoop], Any, httpx2.AsyncClient] | None = None
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, httpx2.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


def get_client(transport: Any = None) -> httpx2.AsyncClient:
    """The pooled AsyncClient of the running loop (one per transport, for tests)."""
    loop = asyncio.get_running_loop()
    # Fast path: the same loop and transport as last time (every request of a batch).
    last = _last_client
    if last is not None and last[0]() is loop and last[1] is transport and not last[2].is_closed:
        return last[2]
    return _get_client_slow(loop, transport)


def _get_client_slow(loop: asyncio.AbstractEventLoop, transport: Any) -> httpx2.AsyncClient:
    global _last_client
    import httpx2

    with _clients_lock:
        per_loop = _clients.setdefault(loop, {})
        key = id(transport)
        client = per_loop.get(key)
        if client is None or client.is_closed:
            client = httpx2.AsyncClient(
                transport=transport,
                # Enough sockets for concurrency 64 x a few hosts, with keep-alive long
                # enough to survive the gaps between cells.
                limits=httpx2.Limits(
                    max_connections=256, max_keepalive_connections=128, keepalive_expiry=60.0
                ),
                timeout=httpx2.Timeout(60.0, connect=10.0),
                follow_redirects=False,
                trust_env=True,
            )
            per_loop[key] = client
        _last_client = (weakref.ref(loop), transport, client)
        return client


@functools.lru_cache(maxsize=64)
def _httpx_timeout(t: Timeouts) -> httpx2.Timeout:
    import httpx2

    return httpx2.Timeout(t.idle, connect=t.connect, pool=t.total)


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
# Error translation: the one boundary


def parse_retry_after(
    headers: Mapping[str, str], now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``retry-after`` (seconds or HTTP date), or the
    ``x-ratelimit-reset*`` headers (``1s``, ``6m0s``, ``20ms``, epoch seconds or RFC 3339)."""
    lower = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lower:
        with contextlib.suppress(ValueError):
            return max(0.0, float(lower["retry-after-ms"]) / 1000.0)
    if "retry-after" in lower:
        value = lower["retry-after"].strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                parsed = None  # an unreadable header is no reason to fail the request
            if parsed is not None:
                return max(0.0, parsed.timestamp() - now())
    resets = [
        v
        for k, v in lower.items()
        if k.startswith("x-ratelimit-reset")
        or (k.startswith("anthropic-ratelimit-") and k.endswith("-reset"))
    ]
    waits = [w for w in (_parse_reset(v, now) for v in resets) if w is not None]
    return max(waits) if waits else None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def _parse_reset(value: str, now: Callable[[], float]) -> float | None:
    value = value.strip()
    if not value:
        return None
    parts = _DURATION_PART.findall(value)
    if parts and "".join(n + u for n, u in parts) == value:
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        return sum(float(n) * scale[u] for n, u in parts)
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        # Large numbers are epoch timestamps, small ones a delay in seconds.
        return max(0.0, number - now()) if number > 1e9 else max(0.0, number)
    with contextlib.suppress(ValueError):
        from datetime import datetime

        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return max(0.0, stamp.timestamp() - now())
    return None


def retry_after_from_body(body: Any) -> float | None:
    """Seconds to wait from a ``google.rpc.RetryInfo`` detail in an error body; Gemini sends
    its 429 wait there (``{"error": {"details": [{"retryDelay": "30s", ...}]}}``), not in a
    header."""
    err = body.get("error") if isinstance(body, Mapping) else None
    details = err.get("details") if isinstance(err, Mapping) else None
    for detail in details if isinstance(details, list) else []:
        delay = detail.get("retryDelay") if isinstance(detail, Mapping) else None
        if isinstance(delay, str):
            return _parse_reset(delay, time.time)
    return None


def error_message(body: Any, text: str) -> tuple[str, str]:
    """(message, code) from any provider's error body shape."""
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, str):
            return err, ""
        if isinstance(err, Mapping):
            message = err.get("message") or err.get("detail") or body.get("message") or ""
            code = err.get("code") or err.get("type") or err.get("status") or ""
            return str(message), str(code)
        if isinstance(body.get("detail"), str):
            return body["detail"], ""
    return text.strip()[:500], ""


def error_from_response(
    response: httpx2.Response, ctx: ErrorContext, *, body_text: str | None = None
) -> errors.ProviderError:
    """Translate an error response into the exception tree (not raised: returned)."""
    status = response.status_code
    text = body_text if body_text is not None else _safe_text(response)
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    message, code = error_message(body, text)
    where = f"{ctx.provider}" + (f" ({ctx.model})" if ctx.model else "")
    # The provider's own sentence, without its full stop: ours follows it.
    message = message.strip().rstrip(".")
    detail = f": {message}" if message else ""
    common: dict[str, Any] = {
        "status_code": status,
        "provider": ctx.provider,
        "model": ctx.model,
        "request": response.request,
        "response": response,
    }
    lowered = f"{message} {code}".lower()
    markers = ctx.context_markers + _DEFAULT_CONTEXT_MARKERS
    if status in (401, 403) or (status == 400 and any(m in lowered for m in ctx.auth_markers)):
        return errors.AuthenticationError(
            f"{where} rejected the API key ({status}){detail}. {ctx.auth_fix()}", **common
        )
    if status == 429:
        retry_after = parse_retry_after(response.headers)
        if retry_after is None:
            retry_after = retry_after_from_body(body)
        wait = f" Retry after {retry_after:.1f} s." if retry_after is not None else ""
        return errors.RateLimitError(
            f"{where} rate limit hit (429){detail}.{wait}", retry_after=retry_after, **common
        )
    if status in (400, 404, 413, 422) and any(m in lowered for m in markers):
        return errors.ContextLengthError(
            f"{where}: the prompt is too long for the model's context window ({status}){detail}."
            " Shorten the prompt or history, or lower max_tokens.",
            **common,
        )
    if status == 404 and ("model" in lowered or not message):
        return errors.ModelNotFoundError(
            f"{where}: model not found (404){detail}. Check the model name; "
            f"`%llm models {ctx.provider}` lists what the provider offers.",
            **common,
        )
    if status in (400, 404, 413, 422):
        return errors.BadRequestError(f"{where} refused the request ({status}){detail}", **common)
    return errors.ProviderError(f"{where} returned HTTP {status}{detail}", **common)


def _safe_text(response: httpx2.Response) -> str:
    try:
        return response.text
    except Exception:
        return ""


class translate_transport_errors:
    """Map httpx2's exceptions to ours, ``from`` the original. When ``partial`` returns text,
    the failure happened mid-stream: raise StreamInterruptedError keeping that text.

    A class rather than a generator-based context manager: it wraps every request, and the
    generator form costs several microseconds each time."""

    __slots__ = ("ctx", "partial")

    def __init__(self, ctx: ErrorContext, *, partial: Callable[[], str] | None = None) -> None:
        self.ctx = ctx
        self.partial = partial

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is None or not isinstance(exc, Exception):
            return
        import httpx2

        ctx = self.ctx
        if isinstance(exc, httpx2.HTTPError | httpx2.StreamError | httpx2.InvalidURL):
            mask_exception(exc)  # it becomes the __cause__ of ours, and keeps the request
        if isinstance(exc, httpx2.InvalidURL | httpx2.UnsupportedProtocol):
            raise errors.ConfigError(
                f"the URL for {ctx.provider} is not usable ({exc}). Check its base URL "
                "setting (e.g. OPENAI_BASE_URL) or the base_url given to lm.register.",
                provider=ctx.provider,
                model=ctx.model,
            ) from exc
        if isinstance(exc, httpx2.TimeoutException):
            arrived = self.partial() if self.partial else ""
            if arrived:
                raise _interrupted(ctx, exc, arrived) from exc
            raise errors.TimeoutError(
                f"{ctx.provider} did not answer in time ({type(exc).__name__}). Raise timeout= "
                "or try again.",
                provider=ctx.provider,
                model=ctx.model,
                request=_request_of(exc),
            ) from exc
        if isinstance(exc, httpx2.TransportError | httpx2.StreamError):
            arrived = self.partial() if self.partial else ""
            if arrived:
                raise _interrupted(ctx, exc, arrived) from exc
            raise errors.APIConnectionError(
                _connection_message(ctx, exc),
                provider=ctx.provider,
                model=ctx.model,
                request=_request_of(exc),
            ) from exc
        if isinstance(exc, httpx2.DecodingError):
            raise errors.ProviderError(
                f"{ctx.provider} sent a body that cannot be decoded ({exc}): its "
                "Content-Encoding does not match the bytes. Try again; if it persists, the "
                "server or a proxy in front of it is broken.",
                provider=ctx.provider,
                model=ctx.model,
                request=_request_of(exc),
            ) from exc
        if isinstance(exc, httpx2.HTTPError | httpx2.CookieConflict):
            raise errors.ProviderError(
                f"the request to {ctx.provider} failed: {type(exc).__name__}: {exc}",
                provider=ctx.provider,
                model=ctx.model,
            ) from exc


_BEFORE_REACHING = ("ConnectError", "ProxyError")


def _connection_message(ctx: ErrorContext, exc: Exception) -> str:
    """'could not reach' only when the server was not reached; a connection that broke
    while sending or reading says so (the server was there)."""
    name = type(exc).__name__
    if name in _BEFORE_REACHING:
        return f"could not reach {ctx.provider}: {name}: {exc}"
    return (
        f"the connection to {ctx.provider} broke before the answer was complete "
        f"({name}: {exc}). Try again; a server that closes it every time may be overloaded "
        "or limit the body size."
    )


def error_from_stream_event(
    payload: Mapping[str, Any],
    status: int,
    response: httpx2.Response,
    ctx: ErrorContext,
    arrived: str,
) -> errors.LLMError:
    """An error object sent inside a 200 stream, as the exception the same error would have
    been as an HTTP ``status``; once text has arrived, a StreamInterruptedError keeping it
    (the mapped error is its ``__cause__``)."""
    synthetic = type(response)(status, json=dict(payload), request=response.request)
    exc = error_from_response(synthetic, ctx)
    if not arrived:
        return exc
    interrupted = errors.StreamInterruptedError(
        f"the {ctx.provider} stream broke after {len(arrived)} characters: {exc.message} "
        "The partial answer is on .partial_text.",
        partial_text=arrived,
        status_code=status,
        provider=ctx.provider,
        model=ctx.model,
    )
    interrupted.__cause__ = exc
    return interrupted


def truncated_stream_error(
    ctx: ErrorContext, arrived: str, end_marker: str
) -> errors.ProviderError:
    """A stream that ended without its ``end_marker`` event: StreamInterruptedError keeping
    the text that arrived, or a plain ProviderError when none did."""
    if arrived:
        return errors.StreamInterruptedError(
            f"the {ctx.provider} stream ended after {len(arrived)} characters without "
            f"{end_marker}; the partial answer is on .partial_text",
            partial_text=arrived,
            provider=ctx.provider,
            model=ctx.model,
        )
    return errors.ProviderError(
        f"the {ctx.provider} stream ended before the answer was complete (no {end_marker})",
        provider=ctx.provider,
        model=ctx.model,
    )


def _interrupted(ctx: ErrorContext, exc: Exception, arrived: str) -> errors.StreamInterruptedError:
    return errors.StreamInterruptedError(
        f"the {ctx.provider} stream broke after {len(arrived)} characters "
        f"({type(exc).__name__}); the partial answer is on .partial_text",
        partial_text=arrived,
        provider=ctx.provider,
        model=ctx.model,
        request=_request_of(exc),
    )


def _request_of(exc: Exception) -> Any:
    try:
        return exc.request  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        return None


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
    client = get_client(transport)
    with translate_transport_errors(ctx):
        response = await _within(
            client.request(
                method,
                url,
                headers=headers,
                json=json_body,
                params=params,
                files=files,
                data=data,
                timeout=_httpx_timeout(timeout),
            ),
            timeout.total,
            ctx,
        )
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
    client = get_client(transport)
    request = client.build_request(
        method, url, headers=headers, json=json_body, params=params, timeout=_httpx_timeout(timeout)
    )
    with translate_transport_errors(ctx):
        response = await _within(client.send(request, stream=True), timeout.total, ctx)
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
