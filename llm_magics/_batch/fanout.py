"""The batch engine behind ``df.llm``: many prompts, one client, bounded concurrency.

What it guarantees, so a notebook user can trust a 10,000-row run:

* **Identical prompts are sent once.** Callers hand over the *unique* prompts; rows that share
  one get the same answer.
* **Bounded concurrency**: ``concurrency`` workers pull the next prompt; nothing else is in
  flight. Key rotation and rate limits are the client's :class:`~llm_magics._client.keys.KeyPool`'s
  business (a worker simply waits in ``acquire``), retries with backoff and Retry-After are the
  client's :class:`~llm_magics._runtime.retry.RetryPolicy`'s.
* **The cache is asked in bulk**: plain-text prompts are built and looked up
  ``LOOKAHEAD`` at a time, one cache query each (:class:`Lookahead`), instead of once per row.
* **Every answer is cached the moment it arrives** (``Client.achat`` writes each response to
  the cache before returning it), so an interrupt loses no finished row and a rerun sends only
  what is missing.
* **Nothing fails silently.** A prompt that still fails after the client's retries gets its
  error text; failures that were worth retrying get one more try in a final sweep once the
  rest is done (a burst of 500s or a short outage should not cost rows). With
  ``errors="raise"`` the first failure cancels the rest and is raised. Failures that would
  repeat for every row (a missing or rejected key, an unknown model, an unsupported option:
  :class:`~llm_magics.ConfigError`, :class:`~llm_magics.AuthenticationError`) are raised at
  once, and so is the error when the first ``FAIL_FAST`` prompts all failed and none
  succeeded (a server that is down should not be retried 10,000 times).
* **Memory**: per prompt only the converted value and the error text are kept; Responses are
  dropped as soon as their value, tokens and cost are counted.

Cancellation (Ctrl-C / kernel interrupt through :func:`llm_magics._runtime.loop.run`) cancels the
workers, waits for them to unwind, reports where the run stopped, and re-raises.

Thread safety: one :func:`run_batch` call runs on one event loop; its stats are written from
that loop only, and progress displays read them from the loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .._client.client import Client
from .._client.pipeline import CacheMode, Prepared
from .._core.errors import (
    AuthenticationError,
    ConfigError,
    EmptyPromptError,
    LLMError,
    OutputParseError,
)
from .._core.fmt import duration, money
from .._core.types import Response
from .._runtime.retry import is_retryable
from .._runtime.waits import Wait, listening

__all__ = ["BatchResult", "BatchStats", "Progress", "TextProgress", "run_batch"]

DEFAULT_CONCURRENCY = 16
#: Give up when this many prompts failed before any succeeded.
FAIL_FAST = 8

ErrorMode = Literal["column", "raise"]


@dataclass
class BatchStats:
    """Live counters of one run; what progress displays show. Row counts, not request counts,
    except ``requests`` (prompts sent to the provider) and ``cache_hits`` (prompts answered
    from the response cache)."""

    total: int
    done: int = 0
    errors: int = 0
    skipped: int = 0
    unique: int = 0
    requests: int = 0
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    status: Literal["running", "done", "interrupted", "failed"] = "running"
    model: str = ""
    #: The latest announced wait (a retry, a rate limit) and when it ends (monotonic).
    waiting: str = ""
    waiting_until: float = 0.0
    cached: bool = True

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        """Rows per second so far."""
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds to go at the current rate, None before it is known."""
        if self.done >= self.total:
            return 0.0
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 else None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def cost_text(self) -> str:
        if self.unpriced and not self.cost:
            return "cost unknown"
        return money(self.cost) + ("+?" if self.unpriced else "")

    def summary(self) -> str:
        """One line: what a person wants to see while it runs and after."""
        parts = [f"{self.done:,}/{self.total:,} rows"]
        if self.status == "running":
            parts.append(f"{self.rate:,.1f} rows/s")
            eta = self.eta
            parts.append(f"ETA {duration(eta)}")
        else:
            parts.append(duration(self.elapsed))
        parts.append(f"{self.tokens:,} tokens")
        parts.append(self.cost_text())
        parts.append(f"{self.cache_hits:,} cached")
        parts.append(f"{self.errors:,} error{'s' if self.errors != 1 else ''}")
        if self.skipped:
            parts.append(f"{self.skipped:,} skipped")
        if self.status == "running" and self.waiting and time.monotonic() < self.waiting_until:
            parts.append(self.waiting)
        return " · ".join(parts)

    def heard(self, wait: Wait) -> bool:
        """A wait was announced: show it until it is over. True when it is news (not the
        same wait another worker announced already)."""
        text, until = str(wait), time.monotonic() + wait.seconds
        news = text != self.waiting or until > self.waiting_until + 1.0
        self.waiting, self.waiting_until = text, until
        return news

    def closing_note(self) -> str:
        if self.status == "interrupted":
            kept = (
                "finished rows are cached; run the same call again to send only the rest"
                if self.cached
                else "cache=False, so a rerun starts over"
            )
            return f"interrupted at {self.done:,}/{self.total:,} rows: {kept}"
        if self.status == "failed":
            return f"stopped at {self.done:,}/{self.total:,} rows by an error"
        return ""


class Progress(Protocol):
    """What the engine reports to. ``update`` is called after every finished prompt and must
    throttle itself; ``close`` is called exactly once, also after an interrupt."""

    def start(self, stats: BatchStats) -> None: ...
    def update(self, stats: BatchStats) -> None: ...
    def close(self, stats: BatchStats) -> None: ...


class NullProgress:
    def start(self, stats: BatchStats) -> None:
        pass

    def update(self, stats: BatchStats) -> None:
        pass

    def close(self, stats: BatchStats) -> None:
        pass


class TextProgress:
    """One line on stderr, rewritten in place with ``\\r`` (every 0.2 s on a terminal, every
    5 s when stderr is a file or a pipe, so logs stay short)."""

    def __init__(self, stream: Any = None, label: str = "llm") -> None:
        self.stream = stream
        self.label = label
        self._last = 0.0
        self._width = 0
        out = self._out()
        self.interval = 0.2 if getattr(out, "isatty", lambda: False)() else 5.0

    def _out(self) -> Any:
        return self.stream if self.stream is not None else sys.stderr

    def _write(self, text: str, end: str = "") -> None:
        line = f"{self.label}: {text}"
        pad = max(0, self._width - len(line))
        self._width = len(line)
        try:
            out = self._out()
            out.write("\r" + line + " " * pad + end)
            out.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not fail the run

    def start(self, stats: BatchStats) -> None:
        self._last = time.monotonic()
        self._write(stats.summary())

    def update(self, stats: BatchStats) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._write(stats.summary())

    def refresh(self, stats: BatchStats) -> None:
        """Show ``stats`` now, throttle or not (an announced wait)."""
        self._last = time.monotonic()
        self._write(stats.summary())

    def close(self, stats: BatchStats) -> None:
        note = stats.closing_note()
        self._write(stats.summary() + (f" · {note}" if note else ""), end="\n")


@dataclass
class BatchResult:
    """Per unique prompt: the converted value (None when it failed) and the error text."""

    values: list[Any]
    errors: list[str | None]
    stats: BatchStats


def error_text(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or repr(exc)
    return f"{type(exc).__name__}: {message}"


#: How many plain-text prompts are built and looked up in the cache at once.
LOOKAHEAD = 256


class Lookahead:
    """Builds the requests of the next ``LOOKAHEAD`` plain-text prompts and asks the cache
    about all of them in one query (:meth:`Client.prepare_many`). Workers take prompts in
    order, so the prompt after the prepared ones triggers the next chunk. Prompts with media
    (tuples) are left to ``achat``, which loads their files right before sending. A chunk
    that fails to build (a bad option) is left to ``achat`` too, so each row gets its error.
    """

    def __init__(
        self, client: Client, prompts: Sequence[Any], cache: CacheMode, options: dict[str, Any]
    ) -> None:
        self._prompts = prompts
        self._cache = cache
        self._options = _request_options(options)
        uses_cache = cache is not False and client.cache is not None
        wanted = uses_cache and not options.get("run_tools")
        self._prepare = client.prepare_many if wanted else None
        self._ready: dict[int, Prepared] = {}
        self._end = 0

    def take(self, i: int) -> Prepared | None:
        """The prepared request of prompt ``i``, or None: use achat."""
        if self._prepare is None:
            return None
        if i >= self._end:
            self._fill(i)
        return self._ready.pop(i, None)

    def _fill(self, start: int) -> None:
        self._end = min(start + LOOKAHEAD, len(self._prompts))
        # An empty prompt fails on its own (a row error), not the whole chunk's lookup.
        plain = [
            j
            for j in range(start, self._end)
            if isinstance(self._prompts[j], str) and self._prompts[j]
        ]
        if not plain:
            return
        assert self._prepare is not None
        try:
            prepared = self._prepare([self._prompts[j] for j in plain], self._cache, self._options)
        except (LLMError, ValueError, TypeError):
            return
        self._ready.update(zip(plain, prepared, strict=True))


#: achat options about sending, not about the request.
_SEND_OPTIONS = frozenset({"timeout", "run_tools", "max_tool_rounds"})


def _request_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options ``build_request`` takes, out of those ``achat`` takes."""
    return {k: v for k, v in options.items() if k not in _SEND_OPTIONS}


def _remember(
    client: Client, prompt: Any, answer: Response, cache: CacheMode, options: dict[str, Any]
) -> None:
    """Cache an answer the client refused to cache because it did not parse, when the caller
    could use it anyway (a label found in prose): a rerun then sends nothing either."""
    if client.cache is None or cache is False or answer.cached:
        return
    try:
        request = client.build_request(prompt, **_request_options(options))
        client.pipeline.put(client.pipeline.cache_key(request, cache), answer)
    except Exception:  # caching is an optimisation; the value is already in hand
        return


def _is_fatal(exc: BaseException) -> bool:
    """Errors that every other row would meet too: stop instead of repeating them."""
    if isinstance(exc, EmptyPromptError):
        return False  # this row's input is empty; the next row's may not be
    return isinstance(exc, ConfigError | AuthenticationError)


async def run_batch(
    client: Client,
    prompts: Sequence[Any],
    *,
    rows: Sequence[int] | None = None,
    materialize: Callable[[Any], Any] | None = None,
    convert: Callable[[Response], Any] = lambda r: r.text,
    recover: Callable[[Response], Any] | None = None,
    concurrency: int | None = None,
    cache: CacheMode = True,
    errors: ErrorMode = "column",
    progress: Progress | None = None,
    stats: BatchStats | None = None,
    options: dict[str, Any] | None = None,
) -> BatchResult:
    """Send every prompt of ``prompts`` with ``client.achat`` and convert the answers.

    ``rows[i]`` is how many DataFrame rows share prompt ``i`` (for progress; default 1).
    ``materialize`` turns a stored prompt into what ``achat`` takes (e.g. loads an image
    file) right before sending, so media are in memory only while in flight. ``convert``
    maps a Response to the stored value; if it raises ValueError the prompt counts as
    failed with that message. ``recover`` handles an :class:`OutputParseError`'s response
    (e.g. a label found in a non-JSON answer) instead of failing the prompt.
    """
    n = len(prompts)
    weights = list(rows) if rows is not None else [1] * n
    stats = stats or BatchStats(total=sum(weights))
    stats.unique = n
    stats.cached = cache is not False and client.cache is not None
    progress = progress or NullProgress()
    values: list[Any] = [None] * n
    failures: list[str | None] = [None] * n
    retry_later: list[int] = []
    opts = dict(options or {})
    successes = 0
    failed = 0
    first_error: BaseException | None = None

    def account(response: Response) -> None:
        if response.cached:
            stats.cache_hits += 1
            return
        stats.requests += 1
        stats.input_tokens += response.usage.input_tokens
        stats.output_tokens += response.usage.output_tokens
        cost = response.cost
        if cost is None:
            from .._client.pricing import cost_of

            cost = cost_of(response)
        if cost is None:
            stats.unpriced += 1
        else:
            stats.cost += cost

    def fail(i: int, exc: BaseException, sweep: bool, retryable: bool = False) -> None:
        nonlocal failed, first_error
        if errors == "raise":
            raise exc
        failed += 1
        if first_error is None:
            first_error = exc
        failures[i] = error_text(exc)
        if not sweep:
            stats.done += weights[i]
            stats.errors += weights[i]
            if retryable:
                retry_later.append(i)
        if not successes and failed >= FAIL_FAST and n > FAIL_FAST:
            raise first_error

    def succeed(i: int, value: Any, sweep: bool) -> None:
        nonlocal successes
        successes += 1
        values[i] = value
        if sweep:
            failures[i] = None
            stats.errors -= weights[i]
        else:
            stats.done += weights[i]

    lookahead = Lookahead(client, prompts, cache, opts)

    async def one(i: int, sweep: bool) -> None:
        prepared = None if sweep else lookahead.take(i)
        prompt = prompts[i]
        if prepared is None:
            try:
                prompt = materialize(prompt) if materialize is not None else prompt
            except (LLMError, ValueError, OSError) as exc:
                # A row-specific input problem (a missing image file, an unreadable value).
                fail(i, exc, sweep)
                return
        try:
            if prepared is not None:
                started = time.perf_counter()
                response = await client.pipeline.answer(prepared, opts.get("timeout"), started)
            else:
                response = await client.achat(prompt, cache=cache, **opts)
        except OutputParseError as exc:
            answer = exc.response
            if recover is None or answer is None:
                fail(i, exc, sweep)
                return
            account(answer)
            try:
                value = recover(answer)
            except ValueError as inner:
                fail(i, inner, sweep)
                return
            _remember(client, prompt, answer, cache, opts)
            succeed(i, value, sweep)
            return
        except LLMError as exc:
            if _is_fatal(exc):
                raise
            fail(i, exc, sweep, is_retryable(exc))
            return
        account(response)
        try:
            value = convert(response)
        except ValueError as exc:
            fail(i, exc, sweep)
            return
        succeed(i, value, sweep)

    async def drain(indices: Sequence[int], sweep: bool) -> None:
        it = iter(indices)

        async def worker() -> None:
            for i in it:  # one shared iterator: each prompt is taken by exactly one worker
                await one(i, sweep)
                progress.update(stats)

        width = max(1, min(concurrency or DEFAULT_CONCURRENCY, len(indices)))
        tasks = [asyncio.ensure_future(worker()) for _ in range(width)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                exc = task.exception()
                if exc is not None:
                    raise exc
        finally:
            # On an error or a cancellation, stop the others and let them unwind (closing
            # connections) before the caller goes on.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    last_refresh = [0.0]

    def heard(wait: Wait) -> None:
        # News, and at most twice a second however many workers announce their waits.
        if stats.heard(wait) and time.monotonic() - last_refresh[0] >= 0.5:
            last_refresh[0] = time.monotonic()
            # Every worker may be waiting, so nothing else would update the display soon.
            refresh = getattr(progress, "refresh", None)
            (refresh or progress.update)(stats)

    progress.start(stats)
    try:
        with listening(heard):  # the workers inherit it
            if n:
                await drain(range(n), sweep=False)
            if retry_later and successes:
                await drain(list(retry_later), sweep=True)
        stats.status = "done"
    except asyncio.CancelledError:
        stats.status = "interrupted"
        raise
    except BaseException:
        stats.status = "failed"
        raise
    finally:
        stats.finished = time.monotonic()
        # A broken display must never hide the run's own outcome.
        with contextlib.suppress(Exception):
            progress.close(stats)
    return BatchResult(values, failures, stats)
