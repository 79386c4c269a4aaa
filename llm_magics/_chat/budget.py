"""Fitting a conversation's history into a token budget.

A conversation sends its earlier turns with each prompt. When they do not fit the budget (the
model's context window less the answer's budget, or ``max_tokens=`` given to the
conversation), whole turns are left out of the request; they stay in the record, so an
export is complete. A turn is never split: a question always travels with its answer (and,
with tools, a call with its result). The system message and the new prompt are never dropped;
a budget too small for them is a ConfigError that says by how much.

Strategies (``truncation=``):

* ``"drop_oldest"`` (default): leave out the oldest turns, one at a time, until the rest fit.
  Keeps the most context.
* ``"sliding"``: like ``drop_oldest``, but the window moves in steps of half the budget, so the
  start of the request stays the same for several turns (which lets a provider's prompt
  cache serve it) at the cost of sending less context right after a step.
* ``"drop_middle"``: keep the first turn (often what sets the task up) and the most recent
  ones, leaving out turns from the middle.
* ``"summarize"``: fold the oldest half into a summary written by a model, sent as a system
  message in their place (:mod:`llm_magics._chat.summary`). :func:`fit` sees only what the
  summary does not cover and treats it as ``drop_oldest`` (the fallback when a summary call
  fails).

Token counts come from :func:`llm_magics._client.usage.message_tokens`: exact for OpenAI
models with tiktoken installed, an estimate otherwise. A conversation calibrates its
estimates with the provider's own count of the previous request (``scale=``), and
:attr:`Fit.counted` says which it was.

Thread safety: pure functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .._client.usage import counts_exactly, message_tokens
from .._core.errors import ConfigError
from .._core.types import Message

__all__ = ["STRATEGIES", "Fit", "Truncation", "fit", "message_tokens"]

Truncation = Literal["drop_oldest", "sliding", "drop_middle", "summarize"]
STRATEGIES: tuple[str, ...] = ("drop_oldest", "sliding", "drop_middle", "summarize")


def check_strategy(truncation: str) -> Truncation:
    if truncation not in STRATEGIES:
        raise ConfigError(f"truncation must be one of {', '.join(STRATEGIES)}; got {truncation!r}")
    return truncation  # type: ignore[return-value]


@dataclass(frozen=True)
class Fit:
    """Which turns a request carries (indices into the history), and how it was counted."""

    kept: tuple[int, ...]
    turns: int
    tokens: int
    budget: int
    exact: bool
    #: Estimates were multiplied by this, learnt from the provider's count of an earlier
    #: request (1.0: not calibrated).
    scale: float = 1.0

    @property
    def counted(self) -> str:
        """How the tokens were counted: ``"exact"`` (tiktoken), ``"calibrated"`` (an estimate
        scaled to the provider's own count of the previous request) or ``"estimate"``."""
        if self.exact:
            return "exact"
        return "calibrated" if self.scale != 1.0 else "estimate"

    @property
    def estimated(self) -> int:
        """The tokens before calibration."""
        return round(self.tokens / self.scale)

    @property
    def dropped(self) -> int:
        return self.turns - len(self.kept)


def fit(
    turns: Sequence[Sequence[Message]],
    fixed: Sequence[Message],
    budget: int,
    truncation: Truncation = "drop_oldest",
    *,
    model: str | None = None,
    scale: float = 1.0,
) -> Fit:
    """The turns (each a question and its answer) that fit ``budget`` tokens together with
    the ``fixed`` messages (the system message and the new prompt), by ``truncation``.
    ``scale`` multiplies estimated counts (never exact ones)."""
    exact = counts_exactly(model)
    scale = 1.0 if exact else scale

    def count(messages: Sequence[Message]) -> int:
        return round(sum(message_tokens(m, model) for m in messages) * scale)

    fixed_tokens = count(fixed)
    if fixed_tokens > budget:
        raise ConfigError(
            f"the system message and the prompt alone take {fixed_tokens} tokens, over the "
            f"conversation's budget of {budget} (by {fixed_tokens - budget}). Raise max_tokens= "
            "or shorten them."
        )
    costs = [count(turn) for turn in turns]
    room = budget - fixed_tokens
    if sum(costs) <= room:
        kept = list(range(len(costs)))
    elif truncation == "drop_middle":
        kept = _first_and_latest(costs, room)
    elif truncation == "sliding":
        kept = list(range(_sliding_start(costs, room), len(costs)))
    else:
        kept = list(range(_oldest_kept(costs, room), len(costs)))
    used = fixed_tokens + sum(costs[i] for i in kept)
    return Fit(tuple(kept), len(costs), used, budget, exact, scale)


def _oldest_kept(costs: Sequence[int], room: int) -> int:
    """The first turn of the longest run of latest turns that fits ``room``."""
    start, used = len(costs), 0
    while start > 0 and used + costs[start - 1] <= room:
        start -= 1
        used += costs[start]
    return start


def _sliding_start(costs: Sequence[int], room: int) -> int:
    """Where the window starts: the first anchor at or after drop_oldest's start. Anchors are
    the turns where the running total of the history crosses a multiple of half the room;
    they depend only on earlier turns, so the start stays put until the window must move."""
    needed = _oldest_kept(costs, room)
    step, total = max(1, room // 2), 0
    for i, cost in enumerate(costs):
        before, total = total, total + cost
        if i >= needed and (i == 0 or total // step > before // step):
            return i
    return needed  # no anchor among the turns that fit: as drop_oldest


def _first_and_latest(costs: Sequence[int], room: int) -> list[int]:
    if not costs or costs[0] > room:
        return list(range(_oldest_kept(costs, room), len(costs)))
    rest = costs[1:]
    start = _oldest_kept(rest, room - costs[0])
    return [0, *range(start + 1, len(costs))]
