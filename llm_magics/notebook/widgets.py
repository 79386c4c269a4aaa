"""Notebook widgets. Imported only when a notebook frontend is present (never by
``import llm_magics``), because it imports ipywidgets and IPython.

:class:`ProgressWidget` is the progress display of ``df.llm`` runs: a bar of rows done out of
the total, and one line with rate, ETA, tokens, cost so far, cache hits and errors (in batch
mode, the provider job's status, requests done, failed and expired, and its ETA). It is
displayed when created (in the kernel's main thread, so it lands in the running cell) and then
updated from the package's loop thread at most ten times a second; ipywidgets sends those
updates over the kernel's thread-safe IOPub channel. In the page, the box carries the CSS class
``llm-magics-progress`` (the bar ``llm-magics-progress-bar``, the text
``llm-magics-progress-text``) so tests and styles can find it.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

if TYPE_CHECKING:
    from .._batch.fanout import BatchStats

__all__ = ["DOM_CLASS", "ProgressWidget"]

DOM_CLASS = "llm-magics-progress"

_STYLE = {"done": "success", "interrupted": "danger", "failed": "danger"}


class ProgressWidget:
    """Progress of one ``df.llm`` run (the engine's Progress protocol)."""

    interval = 0.1

    def __init__(self, label: str = "llm", display: Callable[[Any], Any] | None = None) -> None:
        self.bar = widgets.IntProgress(
            value=0, min=0, max=1, description=label, bar_style="info",
            layout=widgets.Layout(width="320px"),
        )  # fmt: skip
        self.bar.add_class(f"{DOM_CLASS}-bar")
        self.text = widgets.HTML(value="starting…")
        self.text.add_class(f"{DOM_CLASS}-text")
        self.box = widgets.HBox([self.bar, self.text])
        self.box.add_class(DOM_CLASS)
        self._last = 0.0
        if display is None:
            from IPython.display import display as display_fn

            display = display_fn
        display(self.box)

    def _render(self, stats: BatchStats) -> None:
        self.bar.max = max(stats.total, 1)
        self.bar.value = min(stats.rows_done, self.bar.max) if stats.total else self.bar.max
        self.text.value = html.escape(stats.summary())

    def start(self, stats: BatchStats) -> None:
        self._last = time.monotonic()
        self._render(stats)

    def update(self, stats: BatchStats) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._render(stats)

    def refresh(self, stats: BatchStats) -> None:
        """Show ``stats`` now, throttle or not (an announced wait)."""
        self._last = time.monotonic()
        self._render(stats)

    def close(self, stats: BatchStats) -> None:
        self._render(stats)
        style = _STYLE.get(stats.status, "info")
        if style == "success" and stats.errors:
            style = "warning"
        self.bar.bar_style = style
        note = stats.closing_note()
        if note:
            self.text.value += f" · <b>{html.escape(note)}</b>"
