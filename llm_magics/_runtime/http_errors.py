"""The one error boundary: where HTTP statuses, provider error bodies, transport exceptions and
answers of an unexpected shape become :mod:`llm_magics._core.errors` exceptions, and where
Retry-After is read. Every exception made here passes through ``LLMError``, which scrubs any
key out of its message (see :mod:`llm_magics._core.secrets`).

Thread safety: pure functions; ``translate_transport_errors`` is made per request.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._core import errors
from .._core.secrets import mask_exception

if TYPE_CHECKING:
    import httpx2

__all__ = [
    "NOT_UNDERSTOOD",
    "ErrorContext",
    "error_from_response",
    "error_from_stream_event",
    "not_understood",
    "parse_retry_after",
    "translate_transport_errors",
    "truncated_stream_error",
]


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
        if isinstance(exc, httpx2.TransportError | httpx2.StreamError):  # timeouts included
            arrived = self.partial() if self.partial else ""
            if arrived:
                raise _interrupted(ctx, exc, arrived) from exc
            if isinstance(exc, httpx2.TimeoutException):
                raise errors.TimeoutError(
                    f"{ctx.provider} did not answer in time ({type(exc).__name__}). Raise "
                    "timeout= or try again.",
                    provider=ctx.provider,
                    model=ctx.model,
                    request=_request_of(exc),
                ) from exc
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
