"""Summary memory: the oldest turns of a conversation folded by a model into a running
summary, which then travels as a system message in their place.

With ``truncation="summarize"``, when the history no longer fits the budget (or exceeds
``max_history`` turns), the oldest half of the turns not yet summarised is given to the
summary model together with the summary so far, and the answer becomes the new summary.
``Conversation.summarize()`` folds every turn at once. The turns themselves stay in the
record (exports stay complete); only the request changes.

A failed summary call never stops the conversation: the request falls back to leaving out
the oldest turns (as ``drop_oldest``), the conversation says so once, and it tries to
summarise again on a later turn.

Thread safety: plain data and a coroutine; a conversation is meant for one thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._core.types import MediaPart, Message, TextPart
from .turns import SummaryCall, Turn

if TYPE_CHECKING:
    from .._client.client import Client

__all__ = ["SUMMARY_INSTRUCTIONS", "Summary", "summarize_turns", "transcript"]

SUMMARY_INSTRUCTIONS = (
    "You keep the memory of a conversation between a user and an assistant. Write a concise "
    "summary of it that lets the assistant continue without the full text: the user's goals, "
    "facts and names they gave, decisions made, answers given and open questions. Merge the "
    "summary so far (if any) with the new turns. Write plain prose, at most 200 words, in the "
    "conversation's language. Do not address the user."
)

#: Output budget of one summary call: enough for the 200 words asked for.
SUMMARY_TOKENS = 400


@dataclass
class Summary:
    """The running summary: its text, how many of the oldest turns it covers, and the calls
    that wrote it (their usage counts in the conversation's)."""

    text: str = ""
    covers: int = 0
    calls: list[SummaryCall] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.text)

    def message(self) -> Message:
        """The system message a request carries in place of the turns covered."""
        turns = "turn" if self.covers == 1 else "turns"
        return Message(
            "system", f"Summary of the conversation so far ({self.covers} {turns}):\n{self.text}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "covers": self.covers,
            "calls": [c.to_dict() for c in self.calls],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Summary:
        if not data:
            return cls()
        return cls(
            str(data.get("text", "")),
            int(data.get("covers", 0)),
            [SummaryCall.from_dict(c) for c in data.get("calls", [])],
        )


def transcript(turns: Sequence[Turn]) -> str:
    """The turns as plain text for the summary model (media named, not sent)."""
    lines: list[str] = []
    for turn in turns:
        if turn.user is not None:
            lines.append(f"User: {_plain(turn.user)}")
        if turn.answer is not None:
            lines.append(f"Assistant: {turn.answer}")
    return "\n\n".join(lines)


async def summarize_turns(
    client: Client, previous: Summary, turns: Sequence[Turn], **options: Any
) -> Summary:
    """The summary that folds ``turns`` (the next ones after those ``previous`` covers) into
    ``previous``. Raises what the call raises; the caller decides what a failure means."""
    parts = []
    if previous:
        parts.append(f"Summary so far:\n{previous.text}")
    parts.append(f"New turns:\n{transcript(turns)}")
    options.setdefault("temperature", 0.0)
    options.setdefault("max_tokens", SUMMARY_TOKENS)
    response = await client.achat(
        [Message("system", SUMMARY_INSTRUCTIONS), Message("user", "\n\n".join(parts))],
        **options,
    )
    text = response.text.strip()
    if not text:
        raise ValueError(f"the summary model {client.model_id} answered with no text")
    covers = previous.covers + len(turns)
    return Summary(text, covers, [*previous.calls, SummaryCall.of(response, covers)])


def _plain(message: Message) -> str:
    out = []
    for part in message.parts:
        if isinstance(part, TextPart):
            out.append(part.text)
        elif isinstance(part, MediaPart):
            out.append(f"[{part.kind} attached]")
    return " ".join(out)
