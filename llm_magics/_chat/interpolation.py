"""Prompt interpolation for ``%%llm`` cells: ``{name}`` placeholders filled from the notebook.

The rule, written for people who paste code into prompts:

* A placeholder is ``{`` + a *field* + ``}`` with nothing else inside: a Python identifier,
  then any number of ``.attr`` and ``[key]`` steps, then optionally ``!r``/``!s``/``!a`` and
  ``:spec`` (a format spec without spaces), exactly as :meth:`str.format` reads them. Example:
  ``{df}``, ``{row.title}``, ``{cfg[model]}``, ``{scores[0]:.2f}``, ``{In[3]}``, ``{Err[-1]}``.
* Everything else is literal text: a dict literal ``{"a": 1}``, a C block ``{ return x; }``,
  a lone ``{`` or ``}``. Nothing here ever raises on braces.
* A placeholder in doubled braces is the escape: ``{{x}}`` gives ``{x}``, never interpolated.
  Other doubled braces are kept as written, so pasted JSON such as ``{"a": {"b": 1}}`` and
  template syntax such as ``{{ name }}`` reach the model unchanged.
* Names are looked up in the user namespace only (then in ``extras`` such as ``Err``); ``.attr``
  is ``getattr`` (dunder names refused), ``[key]`` is indexing with an int when the key looks
  like one (negative too: ``{Err[-1]}``) and a string otherwise (quotes optional). Nothing is
  ever evaluated.
* An unknown name is an error naming it, except inside Markdown code (a ``````` fenced block or
  an inline ```code``` span) or math (``$...$``, ``$$...$$``), where an unknown ``{x}`` stays as
  written: pasted code keeps its f-strings and format strings, LaTeX keeps ``\\frac{a}{b}``.
* The template is read once: braces inside a substituted value are never interpreted.
* A value that is an image or audio (``lm.Image``, ``lm.Audio``, a PIL image, a matplotlib
  figure, ``IPython.display.Image``/``Audio``, a ``MediaPart``) becomes a media part of the
  message at that position instead of text.

:class:`ErrorLog` (:mod:`llm_magics._chat.errorlog`) records the errors of recent cells so
prompts can say ``{Err[-1]}``. Prompt templates (:mod:`llm_magics._chat.templates`) and their
use over DataFrame rows read their placeholders with the same scanner (:func:`tokens`,
:func:`placeholders`): one grammar, in this module.
Nothing in this module imports IPython; it works on plain mappings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from .._core.errors import ConfigError
from .._core.types import MediaKind, MediaPart
from .errorlog import ErrorLog, ErrorRecord

__all__ = [
    "ErrorLog",
    "ErrorRecord",
    "PromptError",
    "UnknownNameError",
    "code_spans",
    "field_root",
    "format_value",
    "placeholders",
    "render",
    "resolve",
    "to_media_part",
    "tokens",
]

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_FIELD = rf"{_IDENT}(?:\.{_IDENT}|\[[^\[\]{{}}\n]*\])*"
_PLACEHOLDER = re.compile(
    rf"\{{(?P<field>{_FIELD})(?:!(?P<conv>[rsa]))?(?::(?P<spec>[^{{}}\s]*))?\}}"
)
_EXPR = re.compile(rf"\s*(?P<field>{_FIELD})\s*")
_STEP = re.compile(rf"\.(?P<attr>{_IDENT})|\[(?P<key>[^\[\]{{}}\n]*)\]")
_INT = re.compile(r"[+-]?\d+")
_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})[^\n]*$", re.M)
_INLINE = re.compile(r"(?P<ticks>`+)(?!`)[^\n]*?(?<!`)(?P=ticks)(?!`)")
_MATH = re.compile(r"\$\$.+?\$\$|(?<![\\$])\$(?=\S)[^$\n]+?(?<=\S)\$", re.S)


class PromptError(ValueError):
    """A placeholder that cannot be filled; the message says which one and what to do."""


class UnknownNameError(PromptError):
    """The root name of a placeholder or expression is not defined in the notebook."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


_MISSING = object()


def resolve(
    expr: str, namespace: Mapping[str, Any], extras: Mapping[str, Any] | None = None
) -> Any:
    """The value of ``name``, ``name.attr`` or ``name[key]`` (chained) in ``namespace``.

    Raises :class:`UnknownNameError` when the root name is undefined and :class:`PromptError`
    when a step fails or ``expr`` is not such an expression.
    """
    match = _EXPR.fullmatch(expr)
    if match is None:
        raise PromptError(
            f"{expr!r} is not a variable reference: write a name, optionally followed by "
            ".attribute or [key] steps (e.g. img, data.image, frames[0]); nothing is evaluated"
        )
    field = match["field"]
    root = re.match(_IDENT, field)
    assert root is not None
    name = root.group()
    value = namespace.get(name, _MISSING)
    if value is _MISSING and extras is not None:
        value = extras.get(name, _MISSING)
    if value is _MISSING:
        raise UnknownNameError(f"no variable named {name!r} in the notebook", name)
    for step in _STEP.finditer(field, root.end()):
        value = _step(value, step, field)
    return value


def _step(value: Any, step: re.Match[str], field: str) -> Any:
    attr = step["attr"]
    if attr is not None:
        if attr.startswith("__"):
            raise PromptError(f"{{{field}}}: dunder attributes such as {attr!r} are not allowed")
        try:
            return getattr(value, attr)
        except Exception as exc:
            raise PromptError(f"{{{field}}}: {type(exc).__name__}: {exc}") from None
    raw = step["key"].strip()
    key: Any
    if _INT.fullmatch(raw):
        key = int(raw)
    elif len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        key = raw[1:-1]
    else:
        key = raw
    try:
        return value[key]
    except Exception as exc:
        if isinstance(exc, KeyError) and field.startswith("Out[") and isinstance(value, dict):
            have = ", ".join(str(k) for k in sorted(value)[-8:]) or "none yet"
            raise PromptError(
                f"{{{field}}}: cell {raw} has no output. Out holds a cell's value only when "
                f"its last line is an expression (cells with one: {have}); {{In[{raw}]}} is "
                "its code."
            ) from None
        detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise PromptError(
            f"{{{field}}}: no item [{raw}] ({type(exc).__name__}: {detail})"
        ) from None


def code_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of fenced code blocks, inline code spans and ``$math$``, in order.

    These are where an unknown ``{name}`` is left as written."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while True:
        opening = _FENCE.search(text, pos)
        if opening is None:
            break
        fence = opening["fence"]
        closing = re.compile(rf"^ {{0,3}}{fence[0]}{{{len(fence)},}}[ \t]*$", re.M)
        end_match = closing.search(text, opening.end())
        end = end_match.end() if end_match else len(text)
        spans.extend(_inline_spans(text, pos, opening.start()))
        spans.append((opening.start(), end))
        pos = end
    spans.extend(_inline_spans(text, pos, len(text)))
    return sorted(spans)


def _inline_spans(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    found = [(m.start(), m.end()) for m in _INLINE.finditer(text, start, end)]
    for m in _MATH.finditer(text, start, end):
        if not any(a <= m.start() < b for a, b in found):
            found.append((m.start(), m.end()))
    yield from found


def placeholders(template: str) -> list[re.Match[str]]:
    """The placeholders of ``template`` in order, as matches of the one placeholder grammar
    (``match["field"]``, ``match["conv"]``, ``match["spec"]``): escaped ``{{name}}`` and
    braces that form no placeholder are not among them. :func:`render` fills exactly these;
    prompt templates (:mod:`llm_magics._chat.templates`) read their variables from them."""
    return [t for t in tokens(template) if not isinstance(t, str)]


def field_root(field: str) -> str:
    """The name a placeholder's field starts with: ``row`` of ``row.title``, ``Err`` of
    ``Err[-1]``."""
    root = re.match(_IDENT, field)
    assert root is not None, field
    return root.group()


def tokens(template: str) -> Iterator[str | re.Match[str]]:
    """``template`` read once, left to right: literal text (escapes already resolved, so
    ``{{x}}`` yields ``{x}``) and placeholder matches, in order. The one scanner of the
    grammar described in the module docstring."""
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch not in "{}":
            nxt = _next_brace(template, i)
            yield template[i:nxt]
            i = nxt
            continue
        escaped = _escaped_placeholder(template, i)
        if escaped is not None:
            yield escaped.group()  # {{name}} -> {name}
            i = escaped.end() + 1
            continue
        match = _PLACEHOLDER.match(template, i) if ch == "{" else None
        if match is None:
            yield ch
            i += 1
            continue
        yield match
        i = match.end()


def render(
    template: str,
    namespace: Mapping[str, Any],
    extras: Mapping[str, Any] | None = None,
) -> list[str | MediaPart]:
    """Fill the placeholders of ``template`` once; return text and media parts in order.

    Adjacent text is merged, so a prompt without media is a one-item list.
    """
    out: list[str | MediaPart] = []
    buf: list[str] = []
    in_code = _CodeCursor(code_spans(template))
    for token in tokens(template):
        if isinstance(token, str):
            buf.append(token)
            continue
        value = _placeholder_value(token, namespace, extras, in_code.covers(token.start()))
        if value is _MISSING:
            buf.append(token.group())  # an unknown name inside code or math stays as written
            continue
        media = None if token["conv"] or token["spec"] else to_media_part(value)
        if media is not None:
            _flush(buf, out)
            out.append(media)
        else:
            buf.append(format_value(value, token))
    _flush(buf, out)
    return _merge(out)


class _CodeCursor:
    """Whether offsets, asked in increasing order, fall inside code or math: one pass over
    the spans of :func:`code_spans`."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        self._spans = spans
        self._next = 0

    def covers(self, offset: int) -> bool:
        spans = self._spans
        while self._next < len(spans) and spans[self._next][1] <= offset:
            self._next += 1
        return self._next < len(spans) and spans[self._next][0] <= offset < spans[self._next][1]


def _escaped_placeholder(template: str, i: int) -> re.Match[str] | None:
    """The placeholder inside ``{{...}}`` starting at ``i`` (the escape), else None."""
    if template.startswith("{{", i):
        escaped = _PLACEHOLDER.match(template, i + 1)
        if escaped is not None and template.startswith("}", escaped.end()):
            return escaped
    return None


def _placeholder_value(
    match: re.Match[str],
    namespace: Mapping[str, Any],
    extras: Mapping[str, Any] | None,
    in_code: bool,
) -> Any:
    """The value of a placeholder; ``_MISSING`` for an unknown name inside code or math."""
    try:
        return resolve(match["field"], namespace, extras)
    except UnknownNameError as exc:
        if in_code:
            return _MISSING
        raise UnknownNameError(
            f"{{{match['field']}}} in the prompt: no variable named {exc.name!r} in the "
            f"notebook. Define it first, or write {{{{{match['field']}}}}} for literal braces "
            "(unknown names inside ``` code blocks, `inline code` and $math$ stay as written; "
            "%%llm --raw turns interpolation off).",
            exc.name,
        ) from None


def _flush(buf: list[str], out: list[str | MediaPart]) -> None:
    if buf:
        out.append("".join(buf))
        buf.clear()


def _next_brace(text: str, start: int) -> int:
    positions = [p for p in (text.find("{", start), text.find("}", start)) if p != -1]
    return min(positions) if positions else len(text)


def format_value(value: Any, match: re.Match[str]) -> str:
    """``value`` as a placeholder ``match`` writes it: its ``!r``/``!s``/``!a`` and ``:spec``
    applied as :meth:`str.format` does (a :class:`PromptError` when the spec does not fit)."""
    conv = match["conv"]
    if conv == "r":
        value = repr(value)
    elif conv == "a":
        value = ascii(value)
    elif conv == "s":
        value = str(value)
    try:
        return format(value, match["spec"] or "")
    except Exception as exc:
        raise PromptError(
            f"{match.group()} in the prompt: cannot format a {type(value).__name__} with "
            f"spec {match['spec']!r}: {exc}"
        ) from None


def _merge(parts: list[str | MediaPart]) -> list[str | MediaPart]:
    merged: list[str | MediaPart] = []
    for p in parts:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] = merged[-1] + p
        elif not (isinstance(p, str) and not p):
            merged.append(p)
    return merged


# --- media values ------------------------------------------------------------------------

_MEDIA_TYPES = {
    ("PIL.", "Image"): "image",
    ("matplotlib.figure", "Figure"): "image",
    ("IPython.core.display", "Image"): "image",
    ("IPython.lib.display", "Audio"): "audio",
}


def _media_kind(value: Any) -> MediaKind | None:
    for cls in type(value).__mro__:
        for (module, name), kind in _MEDIA_TYPES.items():
            if cls.__module__.startswith(module) and cls.__name__ == name:
                return kind  # type: ignore[return-value]
    return None


def to_media_part(value: Any, kind: MediaKind | None = None) -> MediaPart | None:
    """A MediaPart for media-like objects, else None (the value is then used as text).

    With ``kind`` given (``--image``/``--audio``), paths, URLs and bytes count as media too,
    and anything that is not becomes a :class:`PromptError`.
    """
    from .._media import objects as media

    is_media = (
        isinstance(value, MediaPart)
        or callable(getattr(value, "to_media_part", None))
        or _media_kind(value) is not None
    )
    if not is_media and kind is None:
        return None
    try:
        return media.as_media_part(value, kind=kind)
    except ConfigError as exc:
        raise PromptError(str(exc)) from None
