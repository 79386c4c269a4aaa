"""Structured output: the JSON schema a request asks the model to answer in, and parsing the
answer back (into a pydantic model when one was given). Immutable; thread-safe.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

__all__ = ["OutputSchema"]


@dataclass(frozen=True)
class OutputSchema:
    """A structured-output request: the JSON schema, and the pydantic model to parse into."""

    name: str
    json_schema: dict[str, Any]
    model: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def from_user(cls, schema: Any) -> OutputSchema:
        if isinstance(schema, OutputSchema):
            return schema
        if isinstance(schema, Mapping):
            js = dict(schema)
            return cls(str(js.get("title") or "output"), js)
        schema_fn = getattr(schema, "model_json_schema", None)
        if callable(schema_fn):
            return cls(getattr(schema, "__name__", "output"), schema_fn(), schema)
        raise ConfigError(
            f"schema= takes a pydantic model class or a JSON-schema dict, got {type(schema).__name__}."
        )

    def parse(self, text: str) -> Any:
        """Parse the model's JSON answer; into the pydantic model when one was given."""
        payload = _extract_json(text)
        if self.model is not None:
            return self.model.model_validate(payload)
        return payload


def _extract_json(text: str) -> Any:
    # Small models sometimes wrap JSON in a Markdown fence or add prose around it.
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = stripped.find(opener), stripped.rfind(closer)
        if start != -1 and end > start:
            try:
                return json.loads(stripped[start : end + 1])
            except ValueError:
                continue
    raise ValueError(f"the model's answer is not JSON: {text[:200]!r}")
