"""The progress widget of df.llm: created, displayed once, updated with the run's numbers."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from llm_magics._batch.fanout import BatchStats
from llm_magics.dataframe.run import _in_notebook, _progress
from llm_magics.notebook.widgets import DOM_CLASS, ProgressWidget


def make_widget() -> tuple[ProgressWidget, list[Any]]:
    shown: list[Any] = []
    return ProgressWidget("reviews", display=shown.append), shown


def test_the_widget_is_displayed_once_with_its_own_dom_classes() -> None:
    widget, shown = make_widget()
    assert shown == [widget.box]
    assert DOM_CLASS in widget.box._dom_classes
    assert f"{DOM_CLASS}-bar" in widget.bar._dom_classes
    assert f"{DOM_CLASS}-text" in widget.text._dom_classes
    assert widget.bar.description == "reviews"


def test_the_widget_shows_rows_rate_eta_tokens_cost_cache_hits_and_errors() -> None:
    widget, _ = make_widget()
    stats = BatchStats(total=40)
    widget.start(stats)
    assert (widget.bar.value, widget.bar.max) == (0, 40)
    stats.done, stats.cache_hits, stats.errors = 10, 3, 1
    stats.input_tokens, stats.output_tokens, stats.cost = 1200, 300, 0.0123
    widget._last = 0.0  # past the throttle interval
    widget.update(stats)
    assert widget.bar.value == 10
    text = widget.text.value
    for piece in ("10/40 rows", "rows/s", "ETA", "1,500 tokens", "$0.0123", "3 cached", "1 error"):
        assert piece in text, (piece, text)


def test_updates_are_throttled_but_close_always_renders_the_final_state() -> None:
    widget, _ = make_widget()
    stats = BatchStats(total=5)
    widget.start(stats)
    stats.done = 3
    widget.update(stats)  # within the interval of start(): no redraw
    assert widget.bar.value == 0
    stats.done, stats.status = 5, "done"
    widget.close(stats)
    assert widget.bar.value == 5 and widget.bar.bar_style == "success"
    assert "5/5 rows" in widget.text.value


def test_an_interrupted_run_turns_the_bar_red_and_says_how_to_resume() -> None:
    widget, _ = make_widget()
    stats = BatchStats(total=10, done=4, status="interrupted")
    widget.close(stats)
    assert widget.bar.bar_style == "danger"
    assert "run the same call again" in widget.text.value


def test_errors_make_a_finished_bar_a_warning() -> None:
    widget, _ = make_widget()
    widget.close(BatchStats(total=2, done=2, errors=1, status="done"))
    assert widget.bar.bar_style == "warning"


def test_outside_a_kernel_progress_is_a_text_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_magics._batch.fanout import TextProgress

    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert not _in_notebook()
    assert isinstance(_progress(True, "llm"), TextProgress)
    assert _progress(False, "llm") is None


def test_in_a_kernel_progress_is_the_widget(monkeypatch: pytest.MonkeyPatch) -> None:
    shell = types.SimpleNamespace(kernel=object())
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)
    shown: list[Any] = []
    display_module = types.ModuleType("IPython.display")
    display_module.display = shown.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython.display", display_module)
    assert _in_notebook()
    progress = _progress(True, "llm")
    assert isinstance(progress, ProgressWidget)
    assert shown == [progress.box]


def test_a_terminal_ipython_without_kernel_is_not_a_notebook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: types.SimpleNamespace()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert not _in_notebook()


def test_a_running_batch_job_moves_the_bar_and_shows_its_status() -> None:
    from llm_magics._batch.stats import JobProgress

    shown: list[Any] = []
    widget = ProgressWidget("llm", display=shown.append)
    stats = BatchStats(total=10, done=2)  # two rows came from the response cache
    stats.job = JobProgress(requests=8, succeeded=4, rows=8, jobs=1, status="in_progress")
    widget.start(stats)
    assert widget.bar.value == 6  # the cached rows and half of the job's
    assert "batch job in_progress: 4/8 requests done" in widget.text.value
