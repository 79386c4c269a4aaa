"""The terminal's reports as plain text: providers and models, saved sessions, a session's
metrics, the line under each answer. Pure functions of what the Python API returns, written
with :mod:`llm_magics._core.fmt` (the package's one way to show money, times and tables), so
they read the same in a terminal, a pipe and a test.

Thread safety: pure functions.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from .._chat.metrics import CallStats, SessionMetrics
from .._chat.store import SessionEntry
from .._chat.turns import ConversationUsage
from .._core.fmt import duration, moment, money, text_table, total_cost
from .._core.types import Response
from ..providers.catalog import ModelProfile

__all__ = [
    "metrics_text",
    "models_text",
    "provider_text",
    "providers_text",
    "sessions_text",
    "turn_line",
]


def providers_text(
    rows: Sequence[Mapping[str, Any]],
    known: Mapping[str, Sequence[ModelProfile]],
    every: Mapping[str, ModelProfile | None],
) -> str:
    """Every provider with its key status and default model, then the models known of each
    (``every``: per provider, the profile that holds for any model of it, if any)."""
    table = text_table(
        ["provider", "key", "default model"],
        [[r["provider"], r["key"], r["default_model"] or "-"] for r in rows],
    )
    lines = [table, "", "Known models (prices and limits: llm-magics models PROVIDER):"]
    for row in rows:
        name = row["provider"]
        names = ", ".join(p.model for p in known.get(name, ())) or _any_model(every.get(name))
        lines += textwrap.wrap(
            f"{name}: {names}",
            width=100,
            subsequent_indent="    ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    return "\n".join(lines)


def _any_model(every: ModelProfile | None) -> str:
    if every is not None and every.free:
        return "any model it has (free: it runs on your machine)"
    return "any model it has (prices unknown)"


def provider_text(
    row: Mapping[str, Any], profiles: Sequence[ModelProfile], every: ModelProfile | None
) -> str:
    """One provider: key status, URL, default model, and the profiles known of its models
    (``every``: the profile that holds for any model of it, such as a local server's)."""
    lines = [
        row["provider"],
        f"  key:           {row['key']}",
        f"  base URL:      {row['base_url']}",
        f"  default model: {row['default_model'] or '-'}",
        "",
    ]
    if profiles:
        lines += ["Known models (USD per 1M tokens):", _profiles_table(profiles)]
    else:
        lines.append(f"Models: {_any_model(every)}.")
    return "\n".join(lines)


def _profiles_table(profiles: Sequence[ModelProfile]) -> str:
    def count(n: int | None) -> str:
        return f"{n:,}" if n else "?"

    rows = [
        [p.model, count(p.context_window), count(p.max_output), _price(p.input), _price(p.output)]
        for p in profiles
    ]
    return text_table(["model", "context", "max output", "input", "output"], rows, numbers=True)


def _price(usd: float | None) -> str:
    return "?" if usd is None else money(usd)


def models_text(provider: str, models: Sequence[str]) -> str:
    """The models a provider's API listed, as ids to pass to ``--model``."""
    if not models:
        return f"{provider} lists no models."
    ids = [m if provider == "local" else f"{provider}:{m}" for m in models]
    return "\n".join([f"{len(ids)} model(s) listed by {provider}:", *(f"  {i}" for i in ids)])


def sessions_text(entries: Sequence[SessionEntry]) -> str:
    """Saved sessions: id, model, turns, tokens, cost, last activity."""
    rows = [
        [
            e.name,
            e.model or "-",
            e.turns,
            f"{e.tokens:,}",
            total_cost(e.cost, e.unpriced, e.calls) if e.calls else "-",
            moment(e.last_activity),
        ]
        for e in entries
        if not e.problem
    ]
    return text_table(["session", "model", "turns", "tokens", "cost", "last activity"], rows)


def metrics_text(metrics: SessionMetrics) -> str:
    """A session's calls by model and in total: tokens, cost, latency."""
    turns = f"{metrics.turns} turn(s)"
    if metrics.interrupted:
        turns += f", {metrics.interrupted} stopped early"
    head = f"Session {metrics.name}: {turns}"
    if metrics.first_at:
        head += f", {moment(metrics.first_at)} to {moment(metrics.last_at)}"
    if not metrics.total.calls:
        return head + "\nNo model calls yet."
    total = metrics.total
    timed = total.timed > 0
    rows = [_stats_row(s, timed) for s in metrics.by_model]
    if len(metrics.by_model) > 1:
        rows.append(_stats_row(total, timed))
    header = ["model", "calls", "input tok", "output tok", "tokens", "cost"]
    header += ["latency", "slowest"] if timed else []
    lines = [head, "", text_table(header, rows, numbers=True)]
    if total.timed < total.calls:
        lines.append(
            f"Latency: {total.timed} of {total.calls} call(s) recorded one"
            if total.timed
            else "Latency: not recorded for these calls."
        )
    return "\n".join(lines)


def _stats_row(stats: CallStats, timed: bool) -> list[object]:
    row: list[object] = [
        stats.label,
        stats.calls,
        f"{stats.input_tokens:,}",
        f"{stats.output_tokens:,}",
        f"{stats.tokens:,}",
        total_cost(stats.cost, stats.unpriced, stats.calls),
    ]
    return [*row, duration(stats.latency), duration(stats.slowest)] if timed else row


def turn_line(response: Response | None, session: ConversationUsage, turns: int) -> str:
    """The line under an answer: its model, tokens, cost and latency, then the session's."""
    totals = f"session: {turns} turn(s), {session.tokens:,} tokens, "
    totals += total_cost(session.cost, session.unpriced, session.calls)
    if response is None:
        return totals
    usage = response.usage
    parts = [
        f"{response.provider}:{response.model}",
        f"{usage.input_tokens:,} → {usage.output_tokens:,} tokens",
        money(response.cost),
        duration(response.latency),
    ]
    if response.cached:
        parts.append("cached")
    return " · ".join(parts) + " · " + totals
