"""Running tools: a :class:`ToolRegistry` holds the tools of a call or an agent and runs what
the model asks for.

Tool failures are data. An exception, a timeout, a call to a tool that does not exist or
cannot run, and arguments that are not valid JSON or do not fit the tool's schema all become
a :class:`~llm_magics._core.events.ToolResult` with ``error`` set; its ``content`` (what the
model is sent) says what went wrong, so the model can correct itself. Nothing is raised.

Calls of one model turn run concurrently (``parallel=True``): async tools on the package's
loop, sync ones in worker threads, so two 1 s tools take ~1 s. A sync tool that outlives its
``timeout`` keeps its thread until it returns (Python cannot stop a thread); its result is
then ignored.

Thread safety: a registry is immutable after construction; ``execute`` may be called from
any thread but the package's loop thread (``aexecute`` there).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from .._core.errors import ConfigError
from .._core.events import ToolResult
from .._core.types import ToolCall, ToolSpec
from .._runtime import loop
from .tool_schema import to_tool_specs

__all__ = ["ToolRegistry", "ToolResult"]


class ToolRegistry:
    """The tools a model may call, by name; runs calls into :class:`ToolResult` objects."""

    def __init__(self, tools: Iterable[Any] = ()) -> None:
        self.specs: list[ToolSpec] = to_tool_specs(list(tools)) or []
        self._by_name = {s.name: s for s in self.specs}

    def __repr__(self) -> str:
        return f"ToolRegistry({', '.join(self._by_name) or 'no tools'})"

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self.specs)

    def names(self) -> list[str]:
        return list(self._by_name)

    def get(self, name: str) -> ToolSpec:
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(self._by_name) or "none"
            raise ConfigError(f"no tool named {name!r} (tools: {known})") from None

    def execute(
        self,
        name: str,
        arguments: str | dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> ToolResult:
        """Run tool ``name`` with ``arguments`` (a JSON string or a dict): its result, or
        the error in the result."""
        call = ToolCall.from_raw("call", name, arguments)
        return loop.run(self.aexecute(call, timeout=timeout))

    async def aexecute(self, call: ToolCall, *, timeout: float | None = None) -> ToolResult:
        """Run one call the model asked for (see the module docstring)."""
        started = time.perf_counter()
        spec = self._by_name.get(call.name)
        try:
            problem = _unrunnable(spec, call, self.names())
            if problem is not None:
                return _failed(call, problem, started)
            assert spec is not None and spec.function is not None
            arguments = _checked(spec, call.arguments)
            value = await asyncio.wait_for(_invoke(spec.function, arguments), timeout)
        except asyncio.TimeoutError:  # the builtin on 3.11+
            return _failed(call, f"the tool did not finish within {timeout:g} s", started)
        except _ArgumentError as exc:
            return _failed(call, f"invalid arguments: {exc}", started)
        except Exception as exc:  # the tool's own failure: reported to the model
            return _failed(call, f"{type(exc).__name__}: {exc}", started)
        return ToolResult(
            call.id, call.name, _as_text(value), None, time.perf_counter() - started,
            dict(call.arguments),
        )  # fmt: skip

    async def aexecute_all(
        self,
        calls: Sequence[ToolCall],
        *,
        parallel: bool = True,
        timeout: float | None = None,
    ) -> AsyncIterator[ToolResult]:
        """The results of ``calls`` as each finishes (one after another unless
        ``parallel``)."""
        if not parallel or len(calls) < 2:
            for call in calls:
                yield await self.aexecute(call, timeout=timeout)
            return
        tasks = [asyncio.ensure_future(self.aexecute(c, timeout=timeout)) for c in calls]
        try:
            for finished in asyncio.as_completed(tasks):
                yield await finished
        finally:
            for task in tasks:
                task.cancel()


class _ArgumentError(ValueError):
    pass


def _unrunnable(spec: ToolSpec | None, call: ToolCall, names: list[str]) -> str | None:
    if spec is None:
        return f"there is no tool named {call.name!r}; the tools are: {', '.join(names)}"
    if spec.function is None:
        return f"tool {call.name!r} has no Python function to run here"
    if not call.arguments and call.raw_arguments.strip():
        try:
            json.loads(call.raw_arguments)
        except ValueError:
            return f"invalid arguments: not valid JSON: {call.raw_arguments[:200]}"
    return None


def _checked(spec: ToolSpec, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments checked (and coerced) by the tool's pydantic model, when it has one."""
    model = spec.arguments_model
    if model is None:
        return dict(arguments)
    from pydantic import ValidationError

    try:
        checked = model.model_validate(arguments)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
        )
        raise _ArgumentError(problems) from None
    return {name: getattr(checked, name) for name in type(checked).model_fields}


async def _invoke(function: Any, arguments: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(function):
        return await function(**arguments)
    # A tool may block (files, HTTP); keep it off the package's event loop.
    value = await asyncio.to_thread(function, **arguments)
    if inspect.isawaitable(value):  # a sync wrapper that returns a coroutine
        value = await value
    return value


def _failed(call: ToolCall, problem: str, started: float) -> ToolResult:
    return ToolResult(
        call.id,
        call.name,
        f"error: {problem}",
        problem,
        time.perf_counter() - started,
        dict(call.arguments),
    )


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    dump = getattr(value, "model_dump_json", None)
    if callable(dump):
        return str(dump())
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)
