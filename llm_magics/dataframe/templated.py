"""``df.llm.map(t, ...)`` with a prompt template (``lm.Template``): its variables filled per row.

Where each variable of the template gets its value, first match wins:

1. ``columns={"text": "review"}``: the variable ``text`` is the column ``review``;
2. a keyword of the call naming the variable (``language="French"``): one value for every row;
3. the column of the same name;
4. for ``Series.llm``, the template's main variable is the Series' value;
5. the template's default.

A variable none of these fill is an error that names it, the template, its variables and the
columns, before anything is sent. The template is read with the grammar of ``%%llm`` cells
(:func:`llm_magics._chat.interpolation.placeholders`, the one scanner): braces inside values
are never read again, other braces stay as written. A value that is an image or audio object
(``lm.Image``, a PIL image, a MediaPart) becomes a media part at that position; ``images=`` /
``audio=`` columns are appended after the text as usual.

The template's system text, when it uses no column, is rendered once and sent as the system
prompt (after the call's own ``system=``); when it uses a column it is rendered per row and
travels with the row's prompt as a :class:`SystemPrompt`.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._chat.interpolation import (
    field_root,
    format_value,
    placeholders,
    resolve,
    to_media_part,
    tokens,
)
from .._chat.templates.template import Template
from .._client.inputs import neither_option_nor_variable
from .._core.errors import ConfigError
from .._core.options import CHAT_OPTIONS
from .template import MediaRef, SystemPrompt, join

__all__ = ["Bound", "TemplateBinding", "TemplateRows", "bind_template", "empty_frame"]


@dataclass(frozen=True)
class _Slot:
    """A placeholder filled from a column on each row."""

    column: Hashable
    match: re.Match[str]

    def fill(self, value: Any) -> Any:
        return _fill(self.match, value)


Segment = str | MediaRef | _Slot


class TemplateRows:
    """A template bound to a frame's columns and the call's values: renders each row's
    prompt like a RowTemplate (``columns``, ``has_fields``, ``render``)."""

    def __init__(
        self,
        template: Template,
        user: list[Segment],
        system: list[Segment] | None,
        columns: list[Hashable],
    ) -> None:
        self.template = template
        self._user = user
        self._system = system
        self.columns = columns

    @property
    def has_fields(self) -> bool:
        return bool(self.columns)

    def no_column_message(self, frame_columns: Sequence[Hashable]) -> str:
        shown = ", ".join(str(c) for c in list(frame_columns)[:10]) or "(none)"
        return (
            f"template {self.template.name!r} takes no variable from a column here, so every "
            f"row would get the same answer. Name a column for one of its variables "
            f"({', '.join(self.template.variables) or 'it has none'}) with columns={{...}}, "
            f"or use c.chat(t, ...) for one answer. The columns are: {shown}."
        )

    def render(self, values: Mapping[Hashable, Any], missing: set[Hashable]) -> Any:
        """The prompt of one row: a string, or a tuple of strings and MediaRefs (led by a
        SystemPrompt when the system text varies per row)."""
        prompt = join(_segments(self._user, values, missing))
        if self._system is None:
            return prompt
        system = join(_segments(self._system, values, missing))
        if not isinstance(system, str):
            raise ValueError(
                f"template {self.template.name!r}: a variable of the system text holds media; "
                "a system prompt is text only"
            )
        rest = prompt if isinstance(prompt, tuple) else (prompt,)
        return (SystemPrompt(system), *rest)


def _segments(
    segments: list[Segment], values: Mapping[Hashable, Any], missing: set[Hashable]
) -> list[Any]:
    out: list[Any] = []
    for seg in segments:
        if isinstance(seg, _Slot):
            if seg.column not in missing:
                out.append(seg.fill(values[seg.column]))
        else:
            out.append(seg)
    return out


def _fill(match: re.Match[str], value: Any) -> Any:
    """A placeholder's text for ``value`` (steps, conversion, spec), or a MediaRef."""
    field = match["field"]
    root = field_root(field)
    if field != root:
        value = resolve(field, {root: value})
    if match["conv"] or match["spec"]:
        return format_value(value, match)
    if type(value) is str:
        return value
    part = to_media_part(value)
    if part is not None:
        return MediaRef.of(part.kind, part)
    return format_value(value, match)


@dataclass
class Bound:
    """What :func:`bind_template` gives the run: the rows' renderer and the system prompt
    rendered once (None when it varies per row, or is empty)."""

    rows: TemplateRows
    system: str | None


def bind_template(
    frame: Any,
    template: Template,
    options: dict[str, Any],
    *,
    columns: Mapping[str, Hashable] | None,
    aliases: Mapping[str, Hashable] | None,
) -> Bound:
    """Bind ``template`` to ``frame``: each variable to a column or a value (see the module
    doc). The keywords of ``options`` that are variables are taken out of it."""
    sources, constants = _sources(frame, template, options, columns, aliases)
    used: dict[Hashable, None] = {}
    user = _compile(template.user, sources, constants, used, template.name)
    system_columns = {field_root(m["field"]) for m in placeholders(template.system)} & set(sources)
    if system_columns:
        system_segments = _compile(template.system, sources, constants, used, template.name)
        return Bound(TemplateRows(template, user, system_segments, list(used)), None)
    system = template.render_system(**constants) or None
    return Bound(TemplateRows(template, user, None, list(used)), system)


@dataclass(frozen=True)
class TemplateBinding:
    """An ``lm.Template`` bound to a dataset's columns, in a form that pickles: the template,
    the column names, ``columns=`` and the variables given as keywords. (A TemplateRows holds
    ``re.Match`` objects, which do not pickle; a worker binds again from this.)"""

    template: Template
    frame_columns: tuple[Hashable, ...]
    columns: Mapping[str, Hashable] | None
    given: Mapping[str, Any]
    system: str | None

    @classmethod
    def of(
        cls,
        names: tuple[Hashable, ...],
        template: Template,
        options: dict[str, Any],
        columns: Mapping[str, Hashable] | None,
    ) -> TemplateBinding:
        """Bind on the driver (a missing variable is an error here); the template's
        variable keywords are taken out of ``options``."""
        given = {k: options[k] for k in template.variables if k in options}
        bound = bind_template(empty_frame(names), template, options, columns=columns, aliases=None)
        return cls(template, names, dict(columns) if columns else None, given, bound.system)

    def system_after(self, system: str | None) -> str | None:
        """The call's system prompt followed by the template's, when it uses no column."""
        if not self.system:
            return system
        return f"{system}\n\n{self.system}" if system else self.system

    def rows(self) -> TemplateRows:
        """The bound template, on a worker."""
        frame = empty_frame(self.frame_columns)
        return bind_template(
            frame, self.template, dict(self.given), columns=self.columns, aliases=None
        ).rows


def empty_frame(names: Sequence[Hashable]) -> Any:
    """A frame with these columns and no row (what binding reads of a dataset)."""
    import pandas as pd

    return pd.DataFrame(columns=list(names))


def _sources(
    frame: Any,
    template: Template,
    options: dict[str, Any],
    columns: Mapping[str, Hashable] | None,
    aliases: Mapping[str, Hashable] | None,
) -> tuple[dict[str, Hashable], dict[str, Any]]:
    """Per variable: the column that fills it, or the value (call keyword or default)."""
    mapping = _checked_mapping(frame, template, columns)
    given = {k: options.pop(k) for k in list(options) if k in template.variables}
    for name in options:
        if name not in CHAT_OPTIONS:
            raise neither_option_nor_variable(name, template)
    by_name = {str(c): c for c in frame.columns}
    sources: dict[str, Hashable] = {}
    constants: dict[str, Any] = {}
    missing: list[str] = []
    series_value = aliases.get("value") if aliases else None
    for var in template.variables:
        if var in mapping:
            sources[var] = mapping[var]
        elif var in given:
            constants[var] = given[var]
        elif var in by_name:
            sources[var] = by_name[var]
        elif aliases and var in aliases:
            sources[var] = aliases[var]
        elif var == template.main and series_value is not None:
            sources[var] = series_value
        elif var in template.defaults:
            constants[var] = template.defaults[var]
        else:
            missing.append(var)
    if missing:
        raise ConfigError(_missing_message(template, missing, frame.columns))
    return sources, constants


def _checked_mapping(
    frame: Any, template: Template, columns: Mapping[str, Hashable] | None
) -> dict[str, Hashable]:
    if columns is None:
        return {}
    if not isinstance(columns, Mapping):
        raise ConfigError(
            "columns= maps the template's variables to columns, e.g. columns={'text': "
            f"'review'}}; got {type(columns).__name__}"
        )
    for var, column in columns.items():
        if var not in template.variables:
            raise ConfigError(template.unknown_variable_message(var, "columns="))
        if column not in frame.columns:
            shown = ", ".join(str(c) for c in frame.columns)
            raise ConfigError(
                f"columns={{{var!r}: {column!r}}}: no column named {column!r}; the columns "
                f"are: {shown or '(none)'}"
            )
    return dict(columns)


def _missing_message(template: Template, missing: list[str], frame_columns: Any) -> str:
    shown = ", ".join(str(c) for c in list(frame_columns)[:30]) or "(none)"
    first = missing[0]
    hint = (
        f"no column has that name (the columns: {shown}); map one with "
        f"columns={{{first!r}: 'COLUMN'}}, or give one value for every row with {first}=..."
    )
    return template.missing_message(missing, hint)


def _compile(
    text: str,
    sources: Mapping[str, Hashable],
    constants: Mapping[str, Any],
    used: dict[Hashable, None],
    name: str,
) -> list[Segment]:
    """``text`` as literal text, values rendered once (the constants) and per-row slots,
    read by the one scanner of the grammar (:func:`llm_magics._chat.interpolation.tokens`)."""
    segments: list[Segment] = []
    for token in tokens(text):
        if isinstance(token, str):
            segments.append(token)
            continue
        root = field_root(token["field"])
        if root in sources:
            used.setdefault(sources[root])
            segments.append(_Slot(sources[root], token))
            continue
        try:
            segments.append(_fill(token, constants[root]))
        except ValueError as exc:
            raise ConfigError(f"template {name!r}: {exc}") from None
    return segments
