"""The record of a conversation: its turns, the calls that wrote its summary, and what they
all cost.

A :class:`Turn` is one exchange: a user message and the answer to it. Either side may be
missing when the history is written by hand (``add_user`` waits for its answer;
``add_assistant`` with no question before it stands alone). Turns are never split when a
history is cut to fit a budget, so a question always travels with its answer.

Thread safety: plain data; a conversation is meant for one thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._core.types import Message, Response, Usage

__all__ = ["ConversationUsage", "SummaryCall", "Turn"]


@dataclass
class Turn:
    """One exchange: what was asked, what came back, from which model, at what cost."""

    user: Message | None
    answer: str | None
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    finish_reason: str | None = None
    at: float = field(default_factory=time.time)
    #: Between question and answer: the model's tool calls and their results, in order.
    steps: list[Message] = field(default_factory=list)
    #: Seconds the answer took (None: not measured, e.g. written by hand).
    latency: float | None = None

    @classmethod
    def answered(
        cls, user: Message | None, response: Response, steps: list[Message] | None = None
    ) -> Turn:
        return cls(
            user,
            response.text,
            f"{response.provider}:{response.model}",
            response.usage,
            response.cost,
            response.finish_reason,
            steps=list(steps or []),
            latency=response.latency,
        )

    @property
    def pending(self) -> bool:
        """A question still waiting for its answer."""
        return self.answer is None

    def messages(self) -> list[Message]:
        out = [self.user] if self.user is not None else []
        out.extend(self.steps)
        if self.answer is not None:
            out.append(Message("assistant", self.answer))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user.to_dict() if self.user is not None else None,
            "assistant": self.answer,
            "model": self.model,
            "usage": _usage_dict(self.usage),
            "cost": self.cost,
            "finish_reason": self.finish_reason,
            "at": self.at,
            **({"steps": [m.to_dict() for m in self.steps]} if self.steps else {}),
            **({"latency": round(self.latency, 4)} if self.latency is not None else {}),
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], user: Message | None, steps: list[Message] | None = None
    ) -> Turn:
        """A saved turn, its messages already rebuilt by the caller (media need it)."""
        return cls(
            user,
            data.get("assistant"),
            data.get("model", ""),
            Usage(**(data.get("usage") or {})),
            data.get("cost"),
            data.get("finish_reason"),
            data.get("at", 0.0),
            list(steps or []),
            data.get("latency"),
        )


@dataclass
class SummaryCall:
    """One model call that wrote (or extended) the conversation's summary."""

    model: str
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    covers: int = 0  # turns the summary covered once this call was folded in
    at: float = field(default_factory=time.time)

    @classmethod
    def of(cls, response: Response, covers: int) -> SummaryCall:
        model = f"{response.provider}:{response.model}"
        return cls(model, response.usage, response.cost, covers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "usage": _usage_dict(self.usage),
            "cost": self.cost,
            "covers": self.covers,
            "at": self.at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SummaryCall:
        return cls(
            str(data.get("model", "")),
            Usage(**(data.get("usage") or {})),
            data.get("cost"),
            int(data.get("covers", 0)),
            float(data.get("at", 0.0)),
        )


@dataclass
class ConversationUsage:
    """What a conversation took: its answered turns and the calls that wrote its summary.
    ``cost`` sums the calls with a known price; ``unpriced`` counts the others."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0
    summary_calls: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def of(cls, turns: Iterable[Turn], summaries: Iterable[SummaryCall] = ()) -> ConversationUsage:
        total = cls()
        calls = [t for t in turns if t.model]  # written by hand: no call was made
        every: list[Turn | SummaryCall] = [*calls, *summaries]
        for call in every:
            total.calls += 1
            total.input_tokens += call.usage.input_tokens
            total.output_tokens += call.usage.output_tokens
            if call.cost is None:
                total.unpriced += 1
            else:
                total.cost += call.cost
        total.summary_calls = total.calls - len(calls)
        return total


def _usage_dict(usage: Usage) -> dict[str, int]:
    out = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    if usage.cached_input_tokens:
        out["cached_input_tokens"] = usage.cached_input_tokens
    if usage.cache_write_tokens:
        out["cache_write_tokens"] = usage.cache_write_tokens
    return out
