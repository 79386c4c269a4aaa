"""A prompt template: a system prompt and a user message with ``{name}`` holes.

::

    t = lm.Template("bug_finder", system="You are a senior code reviewer.",
                    user="Language: {language}\\n\\nCode:\\n```\\n{code}\\n```",
                    defaults={"language": "Python"})
    t.variables                      # ('language', 'code')
    t.render(code="def add(a, b): return a - b")   # [Message(system), Message(user)]
    c.chat(t, code="...", language="Go")            # variables by keyword, options too

Placeholders follow the grammar of ``%%llm`` cells, read by the one scanner in
:mod:`llm_magics._chat.interpolation`: ``{name}``, ``{obj.attr}``, ``{d[key]}``, ``{x:.2f}``,
``{x!r}``; ``{{name}}`` is the literal text ``{name}``; braces that form no placeholder
(JSON such as ``{"a": 1}``, code such as ``{ return x; }``) stay as written; a template is
read once, so braces inside a value are never read again. Unlike a cell, every placeholder
of a template is a variable, inside Markdown code too (``{code}`` in a fenced block is the
usual place for code): write ``{{x}}`` for a literal ``{x}``. A value that is an image or
audio (``lm.Image``, a PIL image, a figure, ...) becomes a media part of the user message
at that position.

The *main* variable (``t.main``) is the one a ``%%llm --template`` cell body or a
conversation turn fills: ``main=`` when given, else the last variable of ``user`` without a
default (else its last variable); templates made from this one keep it. A template whose user
text has no variable gets that text appended after a blank line instead.

How a conversation uses a template (``lm.Conversation(template=t)``):

* ``t.render_system(**values)`` is the conversation's system prompt (render it once; it
  needs only the variables the system text uses);
* ``t.render_turn(text, **values)`` is the user message of each turn: ``text`` fills the main
  variable, the other variables of ``user`` come from ``values`` or the defaults. ``text``
  may also be a list of text and media parts (a rendered cell): its text fills the main
  variable, its media are attached after the user text.
* the history stores what was sent (the rendered turns), so a replay, a fork or a saved
  conversation needs no template.

Templates are immutable: :meth:`extend_system` and :meth:`with_defaults` return new ones.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ..._core.errors import ConfigError
from ..._core.templating import RESERVED_VARIABLES
from ..._core.types import MediaPart, Message, Part, TextPart
from ..interpolation import PromptError, field_root, placeholders, render

__all__ = ["Template"]

_CLASS_DOC = """A prompt template: ``Template(name, system="", user="{input}", defaults={})``.

``t.variables`` lists its ``{placeholders}``; ``t.render(**values)`` gives the messages;
``c.chat(t, **values)``, ``c.stream(t, ...)``, ``df.llm.map(t, ...)`` and
``%%llm --template NAME`` use it. See :mod:`llm_magics._chat.templates.template`."""


class _Doc:
    """``__doc__`` of a template: its description (so ``lm.templates.rag_qa?`` and
    ``help()`` say what it does); of the class, the class documentation."""

    def __get__(self, obj: Template | None, owner: type | None = None) -> str:
        return _CLASS_DOC if obj is None else obj.describe()


class Template:
    __doc__ = _Doc()
    __slots__ = (
        "_defaults", "_description", "_main", "_name", "_source", "_system", "_system_vars",
        "_user", "_user_vars", "_variables",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        system: str = "",
        user: str = "{input}",
        defaults: Mapping[str, Any] | None = None,
        *,
        description: str = "",
        main: str | None = None,
        source: str = "",
    ) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(
                "a template name must be a Python identifier such as 'bug_finder' (it is "
                f"used as lm.templates.NAME and %%llm --template NAME); got {name!r}"
            )
        self._name = name
        self._system = _text(system, "system", name)
        self._user = _text(user, "user", name)
        self._description = _text(description, "description", name).strip()
        self._source = source
        self._system_vars = _variables_of(self._system, name)
        self._user_vars = _variables_of(self._user, name)
        self._variables = tuple(dict.fromkeys(self._system_vars + self._user_vars))
        self._defaults = MappingProxyType(self._checked_values(defaults or {}, "defaults"))
        self._main = self._main_variable(main)

    # --- what it is ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def system(self) -> str:
        return self._system

    @property
    def user(self) -> str:
        return self._user

    @property
    def defaults(self) -> Mapping[str, Any]:
        """The values used when a call gives none (read-only; see :meth:`with_defaults`)."""
        return self._defaults

    @property
    def description(self) -> str:
        return self._description

    @property
    def source(self) -> str:
        """Where it came from: ``"built-in"``, the TOML file, or ``""`` (made in code)."""
        return self._source

    @property
    def variables(self) -> tuple[str, ...]:
        """Every variable, in order of first appearance (system, then user)."""
        return self._variables

    @property
    def required(self) -> tuple[str, ...]:
        """The variables without a default: a call must give these."""
        return tuple(v for v in self._variables if v not in self._defaults)

    @property
    def main(self) -> str | None:
        """The variable a cell body or a conversation turn fills (None: the text is
        appended to the user text)."""
        return self._main

    @property
    def signature(self) -> str:
        """The variables as a call would take them: ``text, language='English'``."""
        return ", ".join(
            f"{v}={_short(self._defaults[v])}" if v in self._defaults else v
            for v in self._variables
        )

    def __repr__(self) -> str:
        extra = f", defaults={{{_short_items(self._defaults)}}}" if self._defaults else ""
        return f"Template({self._name!r}, variables={list(self._variables)!r}{extra})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Template):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _rebuild, (
            self._name, self._system, self._user, dict(self._defaults), self._description,
            self._main, self._source,
        )  # fmt: skip

    def _key(self) -> tuple[Any, ...]:
        return (self._name, self._system, self._user, dict(self._defaults), self._main)

    def describe(self) -> str:
        """A readable account: description, variables, system and user text, source."""
        lines = [f"{self._name}: {self._description}" if self._description else self._name]
        lines.append(f"variables: {self.signature or '(none)'}")
        if self._main:
            lines.append(f"main variable (a cell body or a conversation turn): {self._main}")
        for label, text in (("system", self._system), ("user", self._user)):
            if text:
                body = "\n".join(f"    {line}" for line in text.splitlines())
                lines.append(f"{label}:\n{body}")
        if self._source:
            lines.append(f"source: {self._source}")
        return "\n".join(lines)

    # --- new templates from this one -----------------------------------------------------

    def extend_system(self, text: str) -> Template:
        """A new template whose system prompt is this one's plus ``text`` (after a blank
        line). ``text`` may hold placeholders: they become variables too."""
        added = _text(text, "extend_system", self._name).strip()
        system = f"{self._system.rstrip()}\n\n{added}" if self._system.strip() else added
        return self._replace(system=system)

    def with_defaults(self, **values: Any) -> Template:
        """A new template with these defaults added (a value given at call time still
        wins)."""
        self._checked_values(values, "with_defaults()")
        return self._replace(defaults={**self._defaults, **values})

    def _replace(self, **changes: Any) -> Template:
        fields: dict[str, Any] = {
            "system": self._system,
            "user": self._user,
            "defaults": dict(self._defaults),
            "description": self._description,
            "main": self._main,
            "source": self._source,
        }
        fields.update(changes)
        return Template(self._name, **fields)

    # --- rendering -----------------------------------------------------------------------

    def render(self, **values: Any) -> list[Message]:
        """The messages to send: a system message (when the system text renders to
        something) and the user message. Every variable must have a value here or a
        default; nothing is sent by rendering."""
        merged = self._values(values, self._variables)
        messages = []
        system = self._render_system(merged)
        if system:
            messages.append(Message("system", system))
        messages.append(Message("user", self._render_user(merged)))
        return messages

    def render_system(self, **values: Any) -> str:
        """The system prompt alone, filled from ``values`` and the defaults (only the
        variables of the system text are needed): a conversation's system prompt."""
        return self._render_system(self._values(values, self._system_vars))

    def render_turn(self, text: str | Sequence[str | Part], **values: Any) -> Message:
        """One user message shaped by this template, ``text`` filling the main variable:
        a conversation turn or a ``%%llm --template`` cell. ``text`` may be a list of text
        and media parts; its media are attached after the user text."""
        if isinstance(text, str):
            words, media = text, []
        else:
            words = "".join(_text_of(p) for p in text)
            media = [p for p in text if isinstance(p, MediaPart)]
        main = self._main
        if main is not None and main in values:
            raise ConfigError(
                f"template {self._name!r}: the turn's text fills {{{main}}}; do not pass "
                f"{main}= as well"
            )
        wanted = tuple(v for v in self._user_vars if v != main)
        merged = self._values(values, wanted)
        if main is not None:
            merged[main] = words
        content = self._render_user(merged)
        if main is None and words:
            content = _join(content, ("\n\n" if content else "") + words)
        if media:
            content = [*_as_parts(content), *media]
        return Message("user", content)

    def missing(self, values: Mapping[str, Any], among: Sequence[str] | None = None) -> list[str]:
        """The variables (of ``among``, default all) that neither ``values`` nor the
        defaults fill."""
        wanted = self._variables if among is None else among
        return [v for v in wanted if v not in values and v not in self._defaults]

    def _values(self, values: Mapping[str, Any], wanted: Sequence[str]) -> dict[str, Any]:
        self._checked_values(values, "render()")
        missing = self.missing(values, wanted)
        if missing:
            raise ConfigError(self.missing_message(missing))
        return {**self._defaults, **values}

    def missing_message(self, missing: Sequence[str], hint: str = "") -> str:
        """The error for variables without a value: which, which template, what it takes."""
        names = ", ".join(f"{{{v}}}" for v in missing)
        give = hint or "pass " + ", ".join(f"{v}=..." for v in missing)
        return (
            f"template {self._name!r} needs a value for {names} ({give}). Its variables: "
            f"{self.signature}; those shown with a default may be left out."
        )

    def _render_system(self, values: Mapping[str, Any]) -> str:
        parts = self._fill(self._system, values, "system")
        media = [p for p in parts if isinstance(p, MediaPart)]
        if media:
            raise ConfigError(
                f"template {self._name!r}: a variable of the system text holds {media[0].kind}; "
                "a system prompt is text only: put that variable in the user text"
            )
        return "".join(p for p in parts if isinstance(p, str))

    def _render_user(self, values: Mapping[str, Any]) -> str | list[Part]:
        parts = self._fill(self._user, values, "user")
        if all(isinstance(p, str) for p in parts):
            return "".join(p for p in parts if isinstance(p, str))
        return _as_parts(parts)

    def _fill(self, text: str, values: Mapping[str, Any], where: str) -> list[str | MediaPart]:
        try:
            return render(text, values)
        except PromptError as exc:
            message = str(exc).replace(" in the prompt", "")
            raise ConfigError(f"template {self._name!r} ({where} text): {message}") from None

    # --- checks --------------------------------------------------------------------------

    def _checked_values(self, values: Mapping[str, Any], where: str) -> dict[str, Any]:
        if not isinstance(values, Mapping):
            raise ConfigError(
                f"{where} of template {self._name!r} must be a mapping of variable names to "
                f"values; got {type(values).__name__}"
            )
        for key in values:
            if key not in self._variables:
                raise ConfigError(self.unknown_variable_message(key, where))
        return dict(values)

    def unknown_variable_message(self, key: Any, where: str) -> str:
        close = difflib.get_close_matches(str(key), self._variables, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        return (
            f"{where}: template {self._name!r} has no variable {key!r}.{hint} Its variables: "
            f"{', '.join(self._variables) or '(none)'}."
        )

    def _main_variable(self, main: str | None) -> str | None:
        if main is None:
            open_vars = [v for v in self._user_vars if v not in self._defaults]
            candidates = open_vars or list(self._user_vars)
            return candidates[-1] if candidates else None
        if main not in self._user_vars:
            raise ConfigError(
                f"template {self._name!r}: main={main!r} must be a variable of the user text "
                f"({', '.join(self._user_vars) or 'it has none'})"
            )
        return main


def _rebuild(
    name: str,
    system: str,
    user: str,
    defaults: dict[str, Any],
    description: str,
    main: str | None,
    source: str,
) -> Template:
    """The template :meth:`Template.__reduce__` pickled."""
    return Template(name, system, user, defaults, description=description, main=main, source=source)


def _text(value: Any, field: str, name: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(
            f"the {field} of template {name!r} must be a string; got {type(value).__name__}"
        )
    return value


def _variables_of(text: str, name: str) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for match in placeholders(text):
        root = field_root(match["field"])
        if root in RESERVED_VARIABLES:
            raise ConfigError(
                f"template {name!r}: {{{match['field']}}} uses the name {root!r}, which is an "
                f"option of chat() ({root}=); rename the placeholder (e.g. {{{root}_text}}), "
                f"or write {{{{{root}}}}} for the literal text"
            )
        found.setdefault(root)
    return tuple(found)


def _text_of(part: str | Part) -> str:
    if isinstance(part, str):
        return part
    return part.text if isinstance(part, TextPart) else ""


def _as_parts(content: str | Sequence[str | Part]) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(content)] if content else []
    return [TextPart(p) if isinstance(p, str) else p for p in content]


def _join(content: str | list[Part], tail: str) -> str | list[Part]:
    if isinstance(content, str):
        return content + tail
    return [*content, TextPart(tail)]


def _short(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _short_items(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k!r}: {_short(v)}" for k, v in values.items())
