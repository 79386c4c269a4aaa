"""Showing an answer in the executing cell while it streams.

:class:`AnswerView` owns one display handle in the cell's output. Deltas are appended as they
arrive; the handle is updated at most every ``interval`` seconds (the first delta at once, the
last one always), so a long answer does not flood the frontend with thousands of messages.

:func:`pump` drives a :class:`~llm_magics._client.stream.ResponseStream` from the main thread: each
item is fetched on the package's loop thread, and while the next one is late the view flushes
whatever is pending, so the cell never shows stale text for longer than ``interval``. All
display calls happen in the main thread, inside the running cell, so output can never land in
another cell's output area.

Thread safety: main thread only (the kernel's display machinery is not thread-safe).
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable
from typing import Any

from .._core.fmt import money
from .._core.markdown import safe_html, safe_markdown
from .._core.textbuffer import TextBuffer
from .._core.types import Response

__all__ = ["AnswerView", "bundle", "extract_code", "json_bundle", "pump", "usage_line"]

_POLL = 0.1

_FENCED = re.compile(
    r"^ {0,3}(`{3,}|~{3,})[ \t]*([\w+.-]*)[^\n]*\n(.*?)^ {0,3}\1[ \t]*$", re.M | re.S
)
_PY_LANGS = {"", "python", "py", "python3", "ipython", "ipython3"}


def extract_code(text: str) -> str:
    """The code of an answer: the first Python (or unlabelled) fenced block, else the first
    fenced block, else the whole text."""
    blocks = [(m.group(2).lower(), m.group(3)) for m in _FENCED.finditer(text)]
    for lang, body in blocks:
        if lang in _PY_LANGS:
            return body.rstrip("\n")
    if blocks:
        return blocks[0][1].rstrip("\n")
    return text.strip("\n")


def bundle(text: str, fmt: str) -> dict[str, Any]:
    """The MIME bundle of (partial) answer text in format ``fmt``."""
    if fmt == "text" or fmt == "json":
        return {"text/plain": text}
    if fmt == "html":
        return {"text/html": safe_html(text), "text/plain": text}
    return {"text/markdown": safe_markdown(text), "text/plain": text}


def json_bundle(value: Any) -> dict[str, Any]:
    pretty = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if isinstance(value, dict | list):
        return {"application/json": value, "text/plain": pretty}
    return {"text/plain": pretty}


class AnswerView:
    """One display handle in the cell output, updated with throttling."""

    def __init__(
        self,
        fmt: str = "markdown",
        *,
        interval: float = 0.05,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.fmt = fmt
        self.interval = interval
        self.updates = 0
        self.first_update_at: float | None = None
        self.first_delta_at: float | None = None
        self._text = TextBuffer()
        self._clock = clock
        self._handle: Any = None
        self._shown = 0  # characters of the text on screen
        self._last = float("-inf")
        self._placeholder = "…"
        self._placeholder_due: float | None = None

    @property
    def text(self) -> str:
        return self._text.value

    @text.setter
    def text(self, value: str) -> None:
        self._text = TextBuffer(value)

    def start(self, placeholder: str = "…", *, after: float = 0.25) -> None:
        """Show ``placeholder`` if nothing has come ``after`` seconds from now (see
        :meth:`tick`): a quick answer or a quick error then leaves no placeholder behind,
        and a slow one says at once that it is on its way."""
        self._placeholder = placeholder
        self._placeholder_due = self._clock() + after

    def tick(self) -> None:
        """Called while waiting: shows the placeholder once it is due."""
        due = self._placeholder_due
        if due is not None and self._handle is None and self._clock() >= due:
            from IPython.display import display

            self._placeholder_due = None
            self._handle = display({"text/plain": self._placeholder}, raw=True, display_id=True)

    def append(self, delta: str) -> None:
        if self.first_delta_at is None:
            self.first_delta_at = self._clock()
        self._text.append(delta)
        if self._clock() - self._last >= self.interval:
            self.flush()

    def wait_time(self) -> float | None:
        """Seconds until pending text is due on screen; None when nothing is pending."""
        if len(self._text) == self._shown:
            return None
        return max(self.interval - (self._clock() - self._last), 0.0)

    def flush(self) -> None:
        if len(self._text) != self._shown:
            self.show(bundle(self.text, self.fmt))
            self._shown = len(self._text)

    def status(self, line: str) -> None:
        """Say why the answer has not started yet (a retry, a rate limit) in its slot."""
        if self.updates:
            return
        data = {"text/plain": f"{self._placeholder} {line}"}
        if self._handle is None:
            from IPython.display import display

            self._placeholder_due = None
            self._handle = display(data, raw=True, display_id=True)
        else:
            self._handle.update(data, raw=True)

    def show(self, data: dict[str, Any]) -> None:
        from IPython.display import display

        if self._handle is None:
            self._handle = display(data, raw=True, display_id=True)
        else:
            self._handle.update(data, raw=True)
        self.updates += 1
        self._last = self._clock()
        if self.first_update_at is None:
            self.first_update_at = self._last

    def discard(self) -> None:
        """Blank the placeholder (if one was shown) when the request failed before any text
        arrived."""
        if self._handle is not None and self.updates == 0:
            self.show({"text/plain": ""})

    def finish(self, data: dict[str, Any] | None = None) -> None:
        """The final state: ``data`` when given (parsed JSON, a marker), else the full text."""
        if data is not None:
            self.show(data)
            self._shown = len(self._text)
        else:
            self.flush()
            if self.updates == 0:
                # An empty answer: replace the placeholder rather than leave "…" behind.
                self.show(bundle(self.text, self.fmt))


def pump(stream: Any, view: AnswerView, *, close_timeout: float = 2.0) -> None:
    """Feed every delta of ``stream`` (a ResponseStream) into ``view``, from the main thread;
    announced waits (retries, rate limits) show in the view until the answer starts.

    Ctrl-C cancels the request on the loop thread promptly and re-raises KeyboardInterrupt;
    ``view.text`` keeps what arrived.
    """
    from .._runtime.loop import Relay

    relay = Relay(stream.__aiter__())
    try:
        while True:
            # Short slices even when nothing is pending: a simulated interrupt
            # (_thread.interrupt_main, some frontends) does not wake a blocking wait.
            due = view.wait_time()
            kind, value = relay.get(_POLL if due is None else min(due, _POLL))
            view.tick()
            if kind == "item":
                view.append(value)
            elif kind == "wait":
                view.status(str(value))
            elif kind == "end":
                return
            elif view.wait_time() == 0.0:
                view.flush()
    except KeyboardInterrupt:
        # The interrupt may land between taking a delta and showing it; the stream itself
        # knows everything that arrived.
        relay.close(close_timeout)
        arrived = getattr(stream, "text", "")
        if isinstance(arrived, str) and len(arrived) > len(view.text):
            view.text = arrived
        raise
    finally:
        relay.close(close_timeout)


def usage_line(response: Response, *, first_token: float | None = None) -> dict[str, Any]:
    """A small grey line under an answer: model, tokens, time, cost (when known)."""
    parts = [f"{response.provider}:{response.model}" if response.provider != "local" else "local"]
    u = response.usage
    if u.total_tokens:
        parts.append(f"{u.input_tokens:,} → {u.output_tokens:,} tokens")
    if response.cached:
        parts.append("cached")
    elif response.latency is not None:
        timing = f"{response.latency:.2f} s"
        if first_token is not None:
            timing += f" (first token {first_token:.2f} s)"
        parts.append(timing)
    if response.cost is not None:
        parts.append(money(response.cost))
    if response.finish_reason in ("length", "max_tokens"):
        parts.append("stopped at max tokens")
    elif response.finish_reason == "interrupted":
        parts.append("interrupted")
    text = " · ".join(parts)
    return {
        "text/html": (
            '<div class="llm-magics-usage" style="color:#888;font-size:0.8em;margin-top:2px">'
            f"{html.escape(text)}</div>"
        ),
        "text/plain": text,
    }
