"""Tools the model may call: plain Python functions or JSON-schema dicts become
:class:`~llm_magics._core.types.ToolSpec` objects.

``@tool`` is optional: any function with type hints and a docstring works as a tool.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from .._core.errors import ConfigError, LLMError
from .._core.types import Message, Response, ToolCall, ToolSpec, Usage
from .inputs import to_messages

__all__ = ["run_tool_loop", "to_tool_specs", "tool"]

F = TypeVar("F", bound=Callable[..., Any])


class _Asker(Protocol):
    """What the tool loop needs of a client: one round of chat, and names for errors."""

    @property
    def model(self) -> str: ...

    @property
    def provider(self) -> Any: ...

    async def achat(self, prompt: Any, **options: Any) -> Response: ...


def tool(fn: F) -> F:
    """Mark a function as a tool; its JSON schema is built once, here, so mistakes in its
    signature show up at definition time rather than mid-conversation."""
    fn.__llm_tool__ = _spec_from_function(fn)  # type: ignore[attr-defined]
    return fn


def to_tool_specs(tools: Iterable[Any] | None) -> list[ToolSpec] | None:
    if not tools:
        return None
    return [_to_spec(t) for t in tools]


def _to_spec(t: Any) -> ToolSpec:
    if isinstance(t, ToolSpec):
        return t
    spec = getattr(t, "__llm_tool__", None)
    if isinstance(spec, ToolSpec):
        return spec
    if isinstance(t, Mapping):
        fn = t.get("function", t) if t.get("type") == "function" else t
        if "name" not in fn:
            raise ConfigError(f"a tool dict needs a 'name'; got keys {sorted(fn)}")
        return ToolSpec(
            str(fn["name"]),
            str(fn.get("description", "")),
            dict(
                fn.get("parameters")
                or fn.get("input_schema")
                or {"type": "object", "properties": {}}
            ),
        )
    if callable(t):
        return _spec_from_function(t)
    raise ConfigError(f"tools= takes functions or JSON-schema dicts; got {type(t).__name__}")


def _spec_from_function(fn: Callable[..., Any]) -> ToolSpec:
    from pydantic import create_model

    signature = inspect.signature(fn)
    hints = inspect.get_annotations(fn, eval_str=True)
    fields: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(name, str)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[name] = (annotation, default)
    model = create_model(f"{fn.__name__}_args", **fields)
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    doc = inspect.getdoc(fn) or ""
    return ToolSpec(fn.__name__, doc.split("\n\n")[0].strip(), schema, fn)


async def run_tool_loop(
    client: _Asker, prompt: Any, *, tools: Sequence[Any], max_rounds: int = 8, **options: Any
) -> Response:
    """Ask, run the functions the model calls, send their results back, until it answers.

    Only tools given as Python functions can run; a call to a dict-only tool, an unknown
    name, or a function that raises is reported back to the model as the tool's result (so
    it can recover), never raised. The returned Response is the final answer with the usage
    of every round added up; ``raw["tool_rounds"]`` lists the calls made.
    """
    specs = to_tool_specs(tools) or []
    functions = {s.name: s.function for s in specs if s.function is not None}
    messages = to_messages(prompt)
    total = Usage()
    rounds: list[dict[str, Any]] = []
    choice = options.pop("tool_choice", None)
    for _ in range(max_rounds):
        response = await client.achat(messages, tools=specs, tool_choice=choice, **options)
        if choice not in (None, "auto", "none"):
            # A forced choice ("required", a tool's name) holds for the first round only:
            # sent again, it would force a call every round and the loop would never end.
            choice = "auto"
        total = total + response.usage
        if not response.tool_calls:
            response.usage = total
            if rounds:
                response.raw = {"final": response.raw, "tool_rounds": rounds}
            return response
        messages.append(Message("assistant", response.text, list(response.tool_calls)))
        for call in response.tool_calls:
            result = await _invoke(functions.get(call.name), call)
            rounds.append({"name": call.name, "arguments": call.arguments, "result": result})
            messages.append(Message("tool", result, tool_call_id=call.id, name=call.name))
    raise LLMError(
        f"the model was still calling tools after {max_rounds} rounds; raise max_tool_rounds= "
        f"or check the tools ({', '.join(sorted(functions)) or 'none runnable'})",
        provider=client.provider.name,
        model=client.model,
    )


async def _invoke(function: Callable[..., Any] | None, call: ToolCall) -> str:
    if function is None:
        return f"error: no runnable tool named {call.name!r}"
    if not call.arguments and call.raw_arguments.strip():
        try:
            json.loads(call.raw_arguments)
        except ValueError:
            return f"error: arguments were not valid JSON: {call.raw_arguments[:200]}"
    try:
        if inspect.iscoroutinefunction(function):
            value = await function(**call.arguments)
        else:
            # A tool may block (files, HTTP); keep it off the package's event loop.
            value = await asyncio.to_thread(function, **call.arguments)
    except Exception as exc:  # reported to the model, which can retry or explain
        return f"error: {type(exc).__name__}: {exc}"
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)
