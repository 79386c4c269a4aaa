"""``%%llm --template NAME [--var K=V]...``: a cell that fills a prompt template.

* NAME is a notebook variable holding an ``lm.Template``, else a name of ``lm.templates``
  (built-in or from the user's folder); an unknown name suggests the closest.
* The cell body, interpolated as usual (``{name}``, ``{Err[-1]}``; not with ``--raw``), fills
  the template's main variable; ``--image``/``--audio`` are attached after the text. A
  template whose user text has no variable gets the body appended to it.
* Every other variable comes from ``--var K=V`` (V is text, after IPython's own expansion of
  ``$name`` on the line), else from the notebook variable of the same name (any object: a
  DataFrame, an image), else from the template's default.
* A variable without a value is an error naming it, the template and its variables; nothing
  is sent until the template renders.

The template's system text becomes the cell's system prompt, after ``-s`` when both are given
(``LLMMagics.default_system`` applies only to cells without a template).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError

from .._chat.templates import Template, templates
from .._core.types import MediaPart, Message, Part, TextPart

__all__ = ["TemplatedPrompt", "find_template", "templated_prompt"]


@dataclass
class TemplatedPrompt:
    """The user message content of the cell and the template's system prompt ('' for none)."""

    content: str | list[Part]
    system: str


def find_template(name: str, namespace: Mapping[str, Any]) -> Template:
    """The notebook's ``lm.Template`` variable NAME, else ``lm.templates[NAME]``."""
    value = namespace.get(name)
    if isinstance(value, Template):
        return value
    return templates[name]


def parse_vars(items: Sequence[str], template: Template) -> dict[str, str]:
    """``--var K=V`` words as {K: V}; K must be a variable of the template."""
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(
                f"--var {item}: write NAME=VALUE (quote it when the value has spaces: "
                f'--var "question=What is it?")'
            )
        if key not in template.variables:
            close = difflib.get_close_matches(key, template.variables, n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise UsageError(
                f"--var {key}: template {template.name!r} has no variable {key!r}.{hint} Its "
                f"variables: {template.signature or '(none)'}"
            )
        values[key] = value
    return values


def templated_prompt(
    template: Template,
    given: Mapping[str, str],
    body: list[str | MediaPart] | None,
    namespace: Mapping[str, Any],
    extras: Mapping[str, Any],
) -> TemplatedPrompt:
    """Render ``template`` for a cell: ``body`` (the interpolated cell, with media) fills the
    main variable; the other variables come from ``given`` (--var), the notebook, the
    defaults."""
    main = template.main if body else None
    values: dict[str, Any] = {}
    for var in template.variables:
        if var == main and var not in given:
            continue
        if var in given:
            values[var] = given[var]
        elif var in namespace:
            values[var] = namespace[var]
        elif var in extras:
            values[var] = extras[var]
    if body and template.main is not None and template.main in given:
        raise UsageError(
            f"the cell body fills {{{template.main}}} of template {template.name!r}; leave "
            f"out --var {template.main}=... or the body"
        )
    missing = template.missing(values, [v for v in template.variables if v != main])
    if missing:
        raise UsageError(_missing(template, missing, has_body=bool(body)))
    if body:
        turn = template.render_turn(_parts(body), **values)
        return TemplatedPrompt(turn.content, template.render_system(**values))
    messages = template.render(**values)
    return TemplatedPrompt(_user_of(messages), _system_of(messages))


def _missing(template: Template, missing: list[str], *, has_body: bool) -> str:
    hint = (
        "--var NAME=VALUE on the %%llm line, or a notebook variable of that name"
        + ("" if has_body or template.main not in missing else "; the cell body fills {"
           + f"{template.main}" + "}")
    )  # fmt: skip
    return template.missing_message(missing, hint)


def _parts(body: list[str | MediaPart]) -> str | list[str | Part]:
    if all(isinstance(p, str) for p in body):
        return "".join(p for p in body if isinstance(p, str))
    return [TextPart(p) if isinstance(p, str) else p for p in body]


def _user_of(messages: list[Message]) -> str | list[Part]:
    return messages[-1].content


def _system_of(messages: list[Message]) -> str:
    return messages[0].text if messages[0].role == "system" else ""
