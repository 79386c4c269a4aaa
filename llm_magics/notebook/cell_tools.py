"""``%%llm --tools get_weather,search``: the agent loop in a cell.

The names are looked up in the notebook: functions (sync or async, ``@lm.tool`` or plain),
``lm.Tool`` objects, or a list of them. The cell runs an :class:`~llm_magics._chat.agent.Agent`
over the cell's model (with ``--session NAME``, over that conversation, which then keeps the
calls and results). Each tool call shows as it happens, one compact line that opens to the
full result, and each model turn's text streams in as Markdown below the calls before it;
``_llm`` holds the final Response (``raw["tool_rounds"]`` lists the calls).

Main thread only, like every magic.
"""

from __future__ import annotations

import difflib
import html
import json
import time
from typing import TYPE_CHECKING, Any, Protocol

from IPython.core.error import UsageError

from .._core.events import StreamEvent
from .._core.types import Response, ToolCall, ToolSpec
from .display import AnswerView
from .errors import short_error

if TYPE_CHECKING:
    from .._chat.memory import Conversation
    from .._client.client import Client


class CellRun(Protocol):
    """What a tools cell needs of its cell run (a Protocol: cell.py imports this module)."""

    magics: Any
    args: Any
    ns: dict[str, Any]
    started: float


__all__ = ["ask_with_tools", "tools_named"]

_POLL = 0.1


def tools_named(names: str, ns: dict[str, Any]) -> list[Any]:
    """The tools ``--tools a,b`` names, from the notebook's namespace."""
    found: list[Any] = []
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        if name not in ns:
            callables = [k for k, v in ns.items() if callable(v) and not k.startswith("_")]
            close = difflib.get_close_matches(name, callables, n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise UsageError(
                f"--tools: no function named {name!r} in the notebook.{hint} Define it "
                f"(def {name}(...) with type hints and a docstring) and run that cell first."
            )
        value = ns[name]
        items = list(value) if isinstance(value, list | tuple) else [value]
        for item in items:
            if not (callable(item) or isinstance(item, ToolSpec)):
                raise UsageError(
                    f"--tools: {name!r} is a {type(item).__name__}, not a function or an lm.Tool"
                )
        found.extend(items)
    if not found:
        raise UsageError("--tools takes the names of notebook functions: --tools f,g")
    return found


def ask_with_tools(
    run: CellRun,
    client: Client,
    prompt: Any,
    options: dict[str, Any],
    conversation: Conversation | None,
) -> tuple[Response, AnswerView]:
    """Run the agent loop for the cell; returns the final Response and the view of the
    last turn's text (for the usage line and ``-f``)."""
    from .._chat.agent import Agent
    from .._chat.memory import Conversation
    from .._runtime.loop import Relay

    m = run.magics
    tools = tools_named(run.args.tools, run.ns)
    run.started = time.perf_counter()
    if conversation is None:  # an empty Conversation is falsy: compare with None
        conversation = Conversation("cell")
    agent = Agent(tools=tools, conversation=conversation)
    show = _Shown(run.args.format or m.default_format, m.update_interval)
    relay = Relay(agent.astream(prompt, client=client, **options).__aiter__())
    response: Response | None = None
    try:
        while True:
            kind, value = relay.get(_POLL)
            if kind == "end":
                break
            if kind == "item":
                response = show.event(value) or response
            if show.view is not None:
                show.view.flush()
    except KeyboardInterrupt:
        relay.close(2.0)
        raise short_error(KeyboardInterrupt(), "stopped the tool loop") from None
    finally:
        relay.close(2.0)
    if response is None:  # the loop ended in an error event, raised by _Shown
        raise RuntimeError("the tool loop ended without an answer")
    return response, show.final_view()


class _Shown:
    """What a tool cell has on screen: a line per tool call, a view per turn's text."""

    def __init__(self, fmt: str, interval: float) -> None:
        self.fmt = fmt
        self.interval = interval
        self.view: AnswerView | None = None
        self.turn = 0
        self.calls: dict[str, Any] = {}

    def event(self, event: StreamEvent) -> Response | None:
        if event.type == "text":
            if self.view is None or event.turn != self.turn:
                self._finish_view()
                self.view, self.turn = AnswerView(self.fmt, interval=self.interval), event.turn
            self.view.append(event.text)
        elif event.type == "tool_call" and event.tool_call is not None:
            self._finish_view()
            self.calls[event.tool_call.id] = _display_call(event.tool_call)
        elif event.type == "tool_result" and event.result is not None:
            handle = self.calls.get(event.result.call_id)
            if handle is not None:
                handle.update(_call_bundle(event.tool_call, event.result), raw=True)
        elif event.type == "error" and event.error is not None:
            raise event.error
        elif event.type == "done":
            return event.response
        return None

    def _finish_view(self) -> None:
        if self.view is not None:
            self.view.finish()
            self.view = None

    def final_view(self) -> AnswerView:
        if self.view is None:  # the last turn wrote no text
            self.view = AnswerView(self.fmt, interval=self.interval)
        return self.view


def _display_call(call: ToolCall) -> Any:
    from IPython.display import display

    return display(_call_bundle(call, None), raw=True, display_id=True)


def _call_bundle(call: ToolCall | None, result: Any) -> dict[str, Any]:
    """One compact line per call: its name and arguments, then what it gave."""
    name = call.name if call is not None else result.name
    args = ", ".join(
        f"{k}={json.dumps(v, ensure_ascii=False)}"
        for k, v in (call.arguments if call else {}).items()
    )
    head = f"🔧 {name}({args})"
    if result is None:
        text = f"{head} …"
        return {"text/plain": text, "text/html": f"<div>{html.escape(text)}</div>"}
    outcome = f"error: {result.error}" if result.error else result.content
    short = " ".join(outcome.split())
    short = short if len(short) <= 80 else short[:77] + "..."
    line = f"{head} → {short} ({result.duration:.2f} s)"
    return {
        "text/plain": line,
        "text/html": (
            f'<details class="llm-magics-tool"><summary>{html.escape(line)}</summary>'
            f"<pre>{html.escape(outcome)}</pre></details>"
        ),
    }
