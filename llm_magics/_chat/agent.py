"""Agents: a model, its tools and a conversation, running the tool loop until it answers.

    agent = lm.Agent("openai:gpt-4o-mini", tools=[get_weather], system="Be brief.")
    res = agent.run("Weather in Paris and Rome?")   # res.text, .status, .num_turns,
                                                    # .tool_calls, .usage, .cost
    for ev in agent.stream("And tomorrow?"): ...    # StreamEvents as they happen
    agent.reset()

Each run is one turn of the agent's :class:`~llm_magics._chat.memory.Conversation`: the
question, every tool call and result the model made along the way (kept in each provider's
wire shape when sent again, never split from the answer), and the answer. A second run
continues the conversation. The loop is :func:`llm_magics._client.tool_loop.run_events`: tool
failures are results sent back to the model, the calls of one turn run concurrently, and
``max_turns`` ends a run with status ``"max_turns"`` and the text so far. A provider error
ends it with status ``"error"`` (``run`` raises it; ``stream`` ends with an ``error`` event);
Ctrl-C stops it at once.

Thread safety: an agent is meant for one thread, like its conversation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._client.tool_loop import LoopRecord, run_events
from .._client.tool_registry import ToolRegistry
from .._core.errors import ConfigError
from .._core.events import Status, StreamEvent, ToolResult
from .._core.types import Response, Usage
from .._runtime import loop
from .memory import Conversation

if TYPE_CHECKING:
    from .._client.client import Client

__all__ = ["Agent", "AgentResult"]


@dataclass
class AgentResult:
    """What one run did: the answer, how it ended, every tool call, and what it cost."""

    text: str
    status: Status
    num_turns: int
    tool_calls: list[ToolResult] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    response: Response | None = None
    error: BaseException | None = None

    def __repr__(self) -> str:
        return (
            f"AgentResult({self.status}, {self.num_turns} turn(s), "
            f"{len(self.tool_calls)} tool call(s), {self.text[:60]!r})"
        )


class Agent:
    """A model with tools and a memory (see the module docstring)."""

    def __init__(
        self,
        model: str | None = None,
        *,
        tools: Sequence[Any] = (),
        system: str | None = None,
        max_turns: int = 10,
        parallel_tool_execution: bool = True,
        tool_timeout: float | None = 30.0,
        conversation: Conversation | None = None,
        name: str = "agent",
        **options: Any,
    ) -> None:
        if not isinstance(max_turns, int) or max_turns < 1:
            raise ConfigError(f"max_turns must be a positive whole number; got {max_turns!r}")
        if tool_timeout is not None and tool_timeout <= 0:
            raise ConfigError(
                f"tool_timeout must be positive seconds or None; got {tool_timeout!r}"
            )
        self.conversation = conversation if conversation is not None else Conversation(name)
        if model is not None:
            self.conversation.model = model
        if system is not None:
            self.conversation.system = system
        self.tools = ToolRegistry(tools)
        self.max_turns = max_turns
        self.parallel_tool_execution = parallel_tool_execution
        self.tool_timeout = tool_timeout
        self.options = options
        #: The result of the last run (also when it ended in an error).
        self.last: AgentResult | None = None

    def __repr__(self) -> str:
        model = self.conversation.model or "the default model"
        return f"Agent({model!r}, tools=[{', '.join(self.tools.names())}])"

    def run(self, prompt: Any, **options: Any) -> AgentResult:
        """Run until the model answers (or ``max_turns``); raises a provider error."""
        return loop.run(self.arun(prompt, **options))

    async def arun(self, prompt: Any, **options: Any) -> AgentResult:
        """:meth:`run` for async code."""
        async for _event in self.astream(prompt, **options):
            pass
        assert self.last is not None
        if self.last.error is not None:
            raise self.last.error
        return self.last

    def stream(self, prompt: Any, **options: Any) -> Iterator[StreamEvent]:
        """The run's events as they happen (leaving the loop, or Ctrl-C, stops it)."""
        return loop.iterate(self.astream(prompt, **options))

    async def astream(
        self,
        prompt: Any,
        *,
        model: str | None = None,
        client: Client | None = None,
        **options: Any,
    ) -> AsyncIterator[StreamEvent]:
        """:meth:`stream` for async code. ``model=`` (or ``client=``) switches model for
        this run; the history goes along."""
        options = {**self.options, **options}
        client = self.conversation.client_for(model, client)
        messages = await self.conversation.aprepare(prompt, client, options)
        record = LoopRecord()
        done: StreamEvent | None = None
        failed: BaseException | None = None
        async for event in run_events(
            client,
            messages,
            tools=self.tools,
            max_turns=self.max_turns,
            parallel=self.parallel_tool_execution,
            tool_timeout=self.tool_timeout,
            record=record,
            **options,
        ):
            if event.type == "done":
                done = event
            elif event.type == "error":
                failed = event.error
            yield event
        self.last = self._result(record, done, failed)
        if done is not None and done.response is not None:
            self.conversation.add(prompt, done.response, steps=record.added)

    def _result(
        self, record: LoopRecord, done: StreamEvent | None, failed: BaseException | None
    ) -> AgentResult:
        response = done.response if done is not None else None
        return AgentResult(
            text=response.text if response is not None else "\n\n".join(record.texts),
            status=(done.status or "completed") if done is not None else "error",
            num_turns=record.turns,
            tool_calls=list(record.results),
            usage=record.usage,
            cost=record.cost,
            response=response,
            error=failed,
        )

    def reset(self) -> None:
        """Forget the conversation (tools and settings stay)."""
        self.conversation.reset()
