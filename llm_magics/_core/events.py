"""Typed stream events: what a call or an agent run does, as it happens.

    for ev in client.events("What is the weather in Paris?", tools=[get_weather]):
        if ev.type == "text": print(ev.text, end="")
        elif ev.type == "tool_call": print(f"\\n[calling {ev.tool_call.name}]")

The types, in the order they come: ``text`` (a delta of the model's answer), ``tool_call`` (a
complete call the model asked for), ``tool_result`` (what running it gave, or its error),
``usage`` (the tokens of one model turn), then ``done`` (the final Response, with the
run's status) or ``error`` (what stopped it; nothing comes after). :func:`sse` writes events
as Server-Sent Events; :func:`collect` consumes them into the final Response, with optional
callbacks for those who prefer them to a loop.

Immutable and thread-safe.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from .types import Response, ToolCall, Usage

__all__ = ["EventType", "StreamEvent", "ToolResult", "acollect", "collect", "sse"]

EventType = Literal["text", "tool_call", "tool_result", "usage", "error", "done"]
Status = Literal["completed", "max_turns", "error"]


@dataclass(frozen=True)
class ToolResult:
    """What running one tool call gave: ``content`` sent back to the model, ``error`` when
    it failed (an exception, a timeout, arguments that do not fit), and how long it took."""

    call_id: str
    name: str
    content: str
    error: str | None = None
    duration: float = 0.0
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "name": self.name,
            "arguments": self.arguments,
            "content": self.content,
            "error": self.error,
            "duration": round(self.duration, 6),
        }


@dataclass(frozen=True)
class StreamEvent:
    """One thing that happened in a call or an agent run (see the module docstring)."""

    type: EventType
    text: str = ""
    tool_call: ToolCall | None = None
    result: ToolResult | None = None
    usage: Usage | None = None
    response: Response | None = None
    status: Status | None = None
    error: BaseException | None = field(default=None, compare=False)
    turn: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-safe data (what :func:`sse` sends)."""
        out: dict[str, Any] = {"type": self.type, "turn": self.turn}
        if self.type == "text":
            out["text"] = self.text
        if self.tool_call is not None:
            call = self.tool_call
            out["tool_call"] = {"id": call.id, "name": call.name, "arguments": call.arguments}
        if self.result is not None:
            out["result"] = self.result.to_dict()
        if self.usage is not None:
            out["usage"] = {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
            }
        if self.response is not None:
            out["text"] = self.response.text
            out["model"] = f"{self.response.provider}:{self.response.model}"
            out["cost"] = self.response.cost
        if self.status is not None:
            out["status"] = self.status
        if self.error is not None:
            out["error"] = {"type": type(self.error).__name__, "message": str(self.error)}
        return out


def sse(events: Iterable[StreamEvent]) -> Iterator[str]:
    """Each event as a Server-Sent Event: ``event: TYPE\\ndata: {json}\\n\\n``."""
    for event in events:
        data = json.dumps(event.to_dict(), ensure_ascii=False, default=str)
        yield f"event: {event.type}\ndata: {data}\n\n"


OnText = Callable[[str], Any]
OnTool = Callable[[ToolCall, "ToolResult | None"], Any]
OnDone = Callable[[Response], Any]


def collect(
    events: Iterable[StreamEvent],
    *,
    on_text: OnText | None = None,
    on_tool: OnTool | None = None,
    on_done: OnDone | None = None,
) -> Response:
    """Consume ``events`` into the final Response, calling ``on_text(delta)``,
    ``on_tool(call, None)`` when a call starts and ``on_tool(call, result)`` when it ended,
    and ``on_done(response)``. An ``error`` event is raised."""
    final: Response | None = None
    for event in events:
        final = _dispatch(event, on_text, on_tool, on_done) or final
    return _final(final)


async def acollect(
    events: AsyncIterable[StreamEvent],
    *,
    on_text: OnText | None = None,
    on_tool: OnTool | None = None,
    on_done: OnDone | None = None,
) -> Response:
    """:func:`collect` for async iterators of events."""
    final: Response | None = None
    async for event in events:
        final = _dispatch(event, on_text, on_tool, on_done) or final
    return _final(final)


def _dispatch(
    event: StreamEvent, on_text: OnText | None, on_tool: OnTool | None, on_done: OnDone | None
) -> Response | None:
    if event.type == "text" and on_text is not None:
        on_text(event.text)
    elif event.type == "tool_call" and on_tool is not None and event.tool_call is not None:
        on_tool(event.tool_call, None)
    elif event.type == "tool_result" and on_tool is not None and event.result is not None:
        call = event.tool_call or ToolCall(event.result.call_id, event.result.name, {})
        on_tool(call, event.result)
    elif event.type == "error" and event.error is not None:
        raise event.error
    elif event.type == "done" and event.response is not None:
        if on_done is not None:
            on_done(event.response)
        return event.response
    return None


def _final(final: Response | None) -> Response:
    if final is None:
        raise RuntimeError("the events ended without a 'done' event")
    return final
