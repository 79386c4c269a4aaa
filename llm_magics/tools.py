"""Tools the model may call: plain Python functions or JSON-schema dicts become
:class:`~llm_magics._types.ToolSpec` objects.

``@tool`` is optional: any function with type hints and a docstring works as a tool.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ._errors import ConfigError
from ._types import ToolSpec

__all__ = ["to_tool_specs", "tool"]

F = TypeVar("F", bound=Callable[..., Any])


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
