"""The columns a ``df.llm`` call adds: answers, schema fields typed from the schema, errors.

Typing never loses a value: a column gets the dtype its schema names (integer -> ``Int64``,
number -> ``float64``, boolean -> ``boolean``, string enum -> ``category``) only when every
value fits; otherwise it stays a column of Python objects.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .._core.errors import ConfigError
from .._core.types import OutputSchema, Response

__all__ = ["Fields", "assign", "check_out", "object_series", "typed"]

# --- output columns ------------------------------------------------------------------------


def assign(frame: pd.DataFrame, columns: dict[Hashable, Any]) -> pd.DataFrame:
    out = frame.copy()
    for name, values in columns.items():
        out[name] = values
    return out


def object_series(values: list[Any], index: pd.Index) -> pd.Series:
    return pd.Series(values, index=index, dtype=object)


def typed(values: list[Any], index: pd.Index, dtype: Any) -> pd.Series:
    """``values`` as ``dtype`` when every value fits it; objects otherwise (never a value
    silently turned into NaN)."""
    raw = object_series(values, index)
    if dtype is None:
        return raw
    if isinstance(dtype, pd.CategoricalDtype):
        allowed = set(dtype.categories)
        if not all(v is None or v in allowed for v in values):
            return raw
    try:
        return raw.astype(dtype)
    except (TypeError, ValueError):
        return raw


def _deref(node: Any, defs: Mapping[str, Any]) -> Any:
    for _ in range(10):
        if isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
            node = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
        else:
            break
    return node


def _dtype_for(prop: Any, defs: Mapping[str, Any]) -> Any:
    prop = _deref(prop, defs)
    if not isinstance(prop, Mapping):
        return None
    options = prop.get("anyOf") or prop.get("oneOf")
    if options:
        kept = [o for o in (_deref(o, defs) for o in options) if o.get("type") != "null"]
        return _dtype_for(kept[0], defs) if len(kept) == 1 else None
    kind = prop.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    enum = prop.get("enum")
    if enum and all(isinstance(e, str) for e in enum):
        return pd.CategoricalDtype(list(dict.fromkeys(enum)))
    return {"integer": "Int64", "number": "float64", "boolean": "boolean"}.get(kind)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Fields:
    """How a schema's answer becomes columns."""

    schema: OutputSchema
    names: dict[str, Hashable]  # field -> column
    dtypes: dict[str, Any]
    error_column: Hashable
    single: bool  # the schema is not an object with properties: one column holds the answer

    @classmethod
    def of(cls, schema: Any, out: Any) -> Fields:
        spec = OutputSchema.from_user(schema)
        js = spec.json_schema
        defs = {**js.get("definitions", {}), **js.get("$defs", {})}
        props = js.get("properties") if js.get("type", "object") == "object" else None
        if not isinstance(props, Mapping) or not props:
            column = out if isinstance(out, str) else "llm"
            return cls(spec, {"": column}, {"": None}, f"{column}_error", True)
        fields = list(props)
        if out is None:
            names: dict[str, Hashable] = {f: f for f in fields}
            error: Hashable = "llm_error"
        elif isinstance(out, str):
            names = {f: f"{out}_{f}" for f in fields}
            error = f"{out}_error"
        elif isinstance(out, Mapping):
            unknown = set(out) - set(fields)
            if unknown:
                raise ConfigError(
                    f"out= names field(s) {', '.join(sorted(map(str, unknown)))} that the schema "
                    f"does not have; its fields are {', '.join(fields)}"
                )
            names = {f: out.get(f, f) for f in fields}
            error = "llm_error"
        else:
            raise ConfigError(
                "with schema=, out= is None (columns named by the fields), a prefix string, or "
                f"a {{field: column}} mapping; got {type(out).__name__}"
            )
        dtypes = {f: _dtype_for(props[f], defs) for f in fields}
        return cls(spec, names, dtypes, error, False)

    def to_dict(self, response: Response) -> Any:
        parsed = response.parsed
        dump = getattr(parsed, "model_dump", None)
        return dump() if callable(dump) else parsed

    def columns(self, values: list[Any], index: pd.Index) -> dict[Hashable, Any]:
        if self.single:
            return {self.names[""]: object_series(values, index)}
        out: dict[Hashable, Any] = {}
        for field_name, column in self.names.items():
            picked = [v.get(field_name) if isinstance(v, Mapping) else None for v in values]
            out[column] = typed(picked, index, self.dtypes[field_name])
        return out


def check_out(out: Any, default: str) -> str:
    if out is None:
        return default
    if not isinstance(out, str) or not out:
        raise ConfigError(f"out= is the name of the new column (a non-empty string); got {out!r}")
    return out
