"""Tools the model may call: Python functions (sync or async), explicit :class:`Tool` objects
and JSON-schema dicts become :class:`~llm_magics._core.types.ToolSpec` objects.

A function's JSON schema comes from its type hints through pydantic (Optional, Literal,
enums, lists, nested pydantic models: ``$ref`` inlined, since not every provider resolves
them), its description from the docstring's first paragraph, and each argument's
description from the docstring's ``Args:`` / ``Parameters`` / ``:param x:`` section (Google,
NumPy or reST, read by ``docstring_parser``). The same pydantic model checks the arguments a
model sends before the function runs, so a wrong type is an error result, not a crash.

``@tool`` is optional: any function with type hints and a docstring works as a tool; the
decorator builds the schema once, at definition time, so a mistake shows up there.

Thread safety: specs are immutable; building one is pure.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, overload

from .._core.errors import ConfigError
from .._core.types import ToolSpec

__all__ = ["Tool", "to_spec", "to_tool_specs", "tool"]

F = TypeVar("F", bound=Callable[..., Any])


class Tool(ToolSpec):
    """A tool given explicitly: ``lm.Tool(name, description, parameters, function)``.
    ``parameters`` is the JSON schema of its arguments (an object schema)."""

    def __init__(
        self,
        name: str,
        description: str,
        parameters: Mapping[str, Any] | None = None,
        function: Callable[..., Any] | None = None,
    ) -> None:
        if not name or not name.replace("_", "a").replace("-", "a").isalnum():
            raise ConfigError(f"a tool name must be letters, digits, '_' or '-'; got {name!r}")
        schema = dict(parameters or {"type": "object", "properties": {}})
        if schema.get("type", "object") != "object":
            raise ConfigError(f"tool {name!r}: parameters must be an object schema")
        super().__init__(name, description, schema, function)


@overload
def tool(fn: F) -> F: ...
@overload
def tool(*, name: str | None = None, description: str | None = None) -> Callable[[F], F]: ...


def tool(
    fn: F | None = None, *, name: str | None = None, description: str | None = None
) -> F | Callable[[F], F]:
    """Mark a function as a tool (``@lm.tool``, or ``@lm.tool(name=..., description=...)``);
    its schema is built here, once."""

    def mark(f: F) -> F:
        f.__llm_tool__ = spec_from_function(f, name=name, description=description)  # type: ignore[attr-defined]
        return f

    return mark(fn) if fn is not None else mark


def to_tool_specs(tools: Iterable[Any] | None) -> list[ToolSpec] | None:
    if not tools:
        return None
    specs = [to_spec(t) for t in tools]
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"two tools are named {twice[0]!r}; tool names must be unique")
    return specs


def to_spec(t: Any) -> ToolSpec:
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
        return spec_from_function(t)
    raise ConfigError(
        f"tools= takes functions, lm.Tool objects or JSON-schema dicts; got {type(t).__name__}"
    )


def spec_from_function(
    fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
) -> ToolSpec:
    """The spec of a Python function, with an argument checker built from its hints."""
    from pydantic import ConfigDict, create_model

    doc = _parsed_doc(fn)
    fields: dict[str, Any] = {}
    for arg, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = _hints(fn).get(arg, str)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[arg] = (annotation, _field(default, doc.get(arg)))
    tool_name = name or fn.__name__
    try:
        model = create_model(f"{tool_name}_args", __config__=ConfigDict(extra="forbid"), **fields)
        schema = _inline_refs(model.model_json_schema())
    except Exception as exc:  # pydantic cannot describe a hint as JSON schema
        raise ConfigError(f"tool {tool_name!r}: its arguments cannot be described: {exc}") from exc
    _drop_titles(schema)
    summary = description if description is not None else doc.get("", "")
    return ToolSpec(tool_name, summary, schema, fn, model)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return inspect.get_annotations(fn, eval_str=True)
    except Exception as exc:  # a hint naming something not defined
        raise ConfigError(f"tool {fn.__name__!r}: its type hints do not resolve: {exc}") from exc


def _field(default: Any, description: str | None) -> Any:
    from pydantic import Field

    return Field(default, description=description) if description else default


def _parsed_doc(fn: Callable[..., Any]) -> dict[str, str]:
    """The docstring's summary (key ``""``) and each argument's description."""
    import docstring_parser

    text = inspect.getdoc(fn) or ""
    parsed = docstring_parser.parse(text)
    summary = "\n\n".join(p for p in (parsed.short_description, parsed.long_description) if p)
    out = {"": summary.split("\n\n")[0].strip() if summary else text.split("\n\n")[0].strip()}
    for param in parsed.params:
        if param.description:
            out[param.arg_name] = " ".join(param.description.split())
    return out


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every ``$ref`` to its ``$defs`` replaced by the definition itself."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any, seen: tuple[str, ...] = ()) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                key = ref.removeprefix("#/$defs/")
                if key in seen:
                    raise ConfigError(f"a tool's arguments refer to {key!r} recursively")
                merged = {**defs[key], **{k: v for k, v in node.items() if k != "$ref"}}
                return resolve(merged, (*seen, key))
            return {k: resolve(v, seen) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v, seen) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _drop_titles(node: Any) -> None:
    """pydantic titles every model and field; they are noise in a tool schema."""
    if isinstance(node, dict):
        if isinstance(node.get("title"), str):
            del node["title"]
        for value in node.values():
            _drop_titles(value)
    elif isinstance(node, list):
        for value in node:
            _drop_titles(value)
