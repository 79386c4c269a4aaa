"""The tool loop as a stream of events: ask, run the tools the model calls, send their results
back, until it answers or ``max_turns`` model turns have been taken.

:func:`run_events` is the one loop behind ``client.events()``, ``chat(run_tools=True)`` and
``lm.Agent``. Each model turn streams where the provider streams (text events as the answer
arrives, the complete tool calls at the turn's end); the calls of one turn run concurrently
(:class:`~llm_magics._client.tool_registry.ToolRegistry`), each result an event as it
finishes; the results are then sent back in the order of the calls. A provider error is an
``error`` event, after which nothing comes; otherwise the last event is ``done``, carrying
the final Response (usage and cost of every turn added up) and the status: ``"completed"``,
or ``"max_turns"`` with the text so far.

:class:`LoopRecord` keeps what the run did (the messages it added to the history, every tool
result) for an agent's conversation and result.

Thread safety: one loop per call; it runs on the package's event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from .._core.events import StreamEvent, ToolResult
from .._core.types import Message, Response, ToolCall, Usage
from .tool_registry import ToolRegistry

__all__ = ["LoopRecord", "run_events"]


class _Asker(Protocol):
    """What the loop needs of a client: one turn of chat, streamed or not."""

    @property
    def provider(self) -> Any: ...

    async def achat(self, prompt: Any, **options: Any) -> Response: ...

    def astream(self, prompt: Any, **options: Any) -> Any: ...


@dataclass
class LoopRecord:
    """What one run of the loop did."""

    added: list[Message] = field(default_factory=list)  # assistant calls and tool results
    results: list[ToolResult] = field(default_factory=list)
    turns: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: float | None = 0.0
    texts: list[str] = field(default_factory=list)

    def count(self, response: Response) -> None:
        self.turns += 1
        self.usage = self.usage + response.usage
        self.cost = (
            None if self.cost is None or response.cost is None else self.cost + response.cost
        )
        if response.text:
            self.texts.append(response.text)


async def run_events(
    client: _Asker,
    messages: list[Message],
    *,
    tools: ToolRegistry | None,
    execute: bool = True,
    max_turns: int = 10,
    parallel: bool = True,
    tool_timeout: float | None = None,
    stream: bool = True,
    record: LoopRecord | None = None,
    **options: Any,
) -> AsyncIterator[StreamEvent]:
    """The events of a run over ``messages`` (which the loop extends with each turn's calls
    and results). ``tools=None`` is one plain turn; ``execute=False`` offers the tools and
    reports the calls the model makes without running them."""
    record = record if record is not None else LoopRecord()
    specs = tools.specs if tools is not None and len(tools) else None
    choice = options.pop("tool_choice", None)
    for turn in range(1, max_turns + 1):
        try:
            response = None
            async for event in _one_turn(client, messages, turn, stream, specs, choice, options):
                if event.response is not None:
                    response = event.response
                else:
                    yield event
        except Exception as exc:  # the provider's error ends the run, as an event
            yield StreamEvent("error", error=exc, turn=turn)
            return
        assert response is not None
        record.count(response)
        yield StreamEvent("usage", usage=response.usage, turn=turn)
        if choice not in (None, "auto", "none"):
            # A forced choice ("required", a tool's name) holds for the first turn only: sent
            # again, it would force a call every turn and the loop would never end.
            choice = "auto"
        if not response.tool_calls or tools is None or not execute:
            for call in response.tool_calls if tools is not None else ():
                yield StreamEvent("tool_call", tool_call=call, turn=turn)  # asked, not run
            yield _done(response, record, "completed", turn)
            return
        async for event in _run_calls(tools, response, record, parallel, tool_timeout, turn):
            yield event
        messages.extend(record.added[-(len(response.tool_calls) + 1) :])
        if turn == max_turns:
            yield _done(response, record, "max_turns", turn)


async def _one_turn(
    client: _Asker,
    messages: list[Message],
    turn: int,
    stream: bool,
    specs: Any,
    choice: Any,
    options: dict[str, Any],
) -> AsyncIterator[StreamEvent]:
    """Text events of one model turn, then a carrier event holding its Response (taken by
    the caller, never passed on)."""
    tool_options = {"tools": specs, "tool_choice": choice} if specs else {}
    if stream and client.provider.supports_stream:
        answer = client.astream(list(messages), **tool_options, **options)
        async for delta in answer:
            yield StreamEvent("text", text=delta, turn=turn)
        response = answer.response
    else:
        response = await client.achat(list(messages), **tool_options, **options)
        if response.text:
            yield StreamEvent("text", text=response.text, turn=turn)
    yield StreamEvent("done", response=response, turn=turn)


async def _run_calls(
    tools: ToolRegistry,
    response: Response,
    record: LoopRecord,
    parallel: bool,
    timeout: float | None,
    turn: int,
) -> AsyncIterator[StreamEvent]:
    calls = unique_ids(list(response.tool_calls))
    for call in calls:
        yield StreamEvent("tool_call", tool_call=call, turn=turn)
    by_id: dict[str, ToolResult] = {}
    async for result in tools.aexecute_all(calls, parallel=parallel, timeout=timeout):
        by_id[result.call_id] = result
        call = next(c for c in calls if c.id == result.call_id)
        yield StreamEvent("tool_result", tool_call=call, result=result, turn=turn)
    record.added.append(Message("assistant", response.text, calls))
    for call in calls:  # sent back in the order the model asked
        result = by_id[call.id]
        record.results.append(result)
        record.added.append(Message("tool", result.content, tool_call_id=call.id, name=call.name))


def _done(response: Response, record: LoopRecord, status: Any, turn: int) -> StreamEvent:
    text = response.text if status == "completed" else "\n\n".join(record.texts)
    final = replace(response, text=text, usage=record.usage, cost=record.cost)
    if record.results:
        final.raw = {
            "final": response.raw,
            "tool_rounds": [
                {"name": r.name, "arguments": r.arguments, "result": r.content}
                for r in record.results
            ],
        }
    return StreamEvent("done", response=final, status=status, turn=turn)


def unique_ids(calls: list[ToolCall]) -> list[ToolCall]:
    """Calls with distinct ids (some models repeat or omit them), so results match."""
    seen: set[str] = set()
    out = []
    for i, call in enumerate(calls):
        ident = call.id if call.id and call.id not in seen else f"call_{i}"
        seen.add(ident)
        out.append(call if ident == call.id else replace(call, id=ident))
    return out
