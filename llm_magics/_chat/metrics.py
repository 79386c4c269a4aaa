"""What a conversation took, model by model: calls, tokens, cost and latency.

:func:`session_metrics` groups the turns by the model that answered them (the calls that
wrote the summary form their own rows) and sums each group with
:class:`~llm_magics._chat.turns.ConversationUsage`, so its totals are ``conv.usage`` exactly.

Latency is the time from sending a request to its whole answer, as the client measured it
(``Response.latency``). It is read from a turn's ``latency`` when the turn kept one; turns
saved without it (by hand, or before turns kept it) are left out of the mean, and
``timed`` says how many calls it covers.

Thread safety: pure functions over a conversation read by one thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .turns import ConversationUsage, SummaryCall, Turn

__all__ = ["CallStats", "SessionMetrics", "session_metrics"]


@dataclass(frozen=True)
class CallStats:
    """Calls of one model (or of a whole session): tokens, cost (``unpriced`` calls had no
    known price), and the mean latency in seconds of the ``timed`` calls that recorded one."""

    label: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0
    latency: float | None = None
    timed: int = 0
    slowest: float | None = None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def of(
        cls, label: str, turns: Iterable[Turn], summaries: Iterable[SummaryCall] = ()
    ) -> CallStats:
        turns, summaries = list(turns), list(summaries)
        used = ConversationUsage.of(turns, summaries)
        waits = [w for w in map(_latency, [*turns, *summaries]) if w is not None]
        return cls(
            label,
            used.calls,
            used.input_tokens,
            used.output_tokens,
            used.cost,
            used.unpriced,
            sum(waits) / len(waits) if waits else None,
            len(waits),
            max(waits) if waits else None,
        )


@dataclass(frozen=True)
class SessionMetrics:
    """A conversation's calls by model, and in total; its turns and when it was active."""

    name: str
    turns: int
    interrupted: int
    by_model: Sequence[CallStats]
    total: CallStats
    first_at: float | None
    last_at: float | None


def session_metrics(conv: Any) -> SessionMetrics:
    """The metrics of ``conv`` (a :class:`~llm_magics.Conversation`)."""
    turns: list[Turn] = list(conv.turns)
    by_model: dict[str, list[Turn]] = {}
    for turn in turns:
        if turn.model:  # turns written by hand made no call
            by_model.setdefault(turn.model, []).append(turn)
    rows = [CallStats.of(model, group) for model, group in by_model.items()]
    summaries: dict[str, list[SummaryCall]] = {}
    for call in conv.summary.calls:
        summaries.setdefault(f"{call.model} (summaries)", []).append(call)
    rows += [CallStats.of(label, (), calls) for label, calls in summaries.items()]
    stamps = [t.at for t in turns if t.at]
    return SessionMetrics(
        conv.name,
        len(turns),
        sum(1 for t in turns if t.finish_reason == "interrupted"),
        tuple(rows),
        CallStats.of("total", turns, conv.summary.calls),
        min(stamps) if stamps else None,
        max(stamps) if stamps else None,
    )


def _latency(call: object) -> float | None:
    value = getattr(call, "latency", None)  # kept by turns that recorded their Response's
    return float(value) if isinstance(value, (int, float)) and value >= 0 else None
