"""Tools the model may call, and ``chat(run_tools=True)``.

The parts live by concept: :mod:`~llm_magics._client.tool_schema` (functions, ``lm.Tool`` and
dicts to specs), :mod:`~llm_magics._client.tool_registry` (running calls: failures are data)
and :mod:`~llm_magics._client.tool_loop` (the loop as a stream of events). This module keeps
the names the rest of the package imports, and the blocking-style loop of ``chat``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._core.errors import LLMError
from .._core.types import Response
from .inputs import to_messages
from .tool_loop import run_events
from .tool_registry import ToolRegistry
from .tool_schema import Tool, to_tool_specs, tool

__all__ = ["Tool", "ToolRegistry", "run_tool_loop", "to_tool_specs", "tool"]


async def run_tool_loop(
    client: Any, prompt: Any, *, tools: Sequence[Any], max_rounds: int = 8, **options: Any
) -> Response:
    """Ask, run the functions the model calls, send their results back, until it answers.

    A call to a tool that cannot run, or one that fails, is reported back to the model as the
    tool's result (so it can recover), never raised. The returned Response is the final
    answer with the usage of every round added up; ``raw["tool_rounds"]`` lists the calls
    made. A model still calling tools after ``max_rounds`` rounds is an LLMError (an
    ``lm.Agent`` returns status ``"max_turns"`` instead).
    """
    registry = ToolRegistry(tools)
    events = run_events(
        client, to_messages(prompt), tools=registry, max_turns=max_rounds, stream=False,
        **options,
    )  # fmt: skip
    async for event in events:
        if event.type == "error" and event.error is not None:
            raise event.error
        if event.type == "done" and event.status == "max_turns":
            raise LLMError(
                f"the model was still calling tools after {max_rounds} rounds; raise "
                f"max_tool_rounds= or check the tools ({', '.join(registry.names()) or 'none'})",
                provider=client.provider.name,
                model=client.model,
            )
        if event.type == "done" and event.response is not None:
            return event.response
    raise RuntimeError("the tool loop ended without an answer")
