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

:class:`ErrorLog` records the errors of recent cells so prompts can say ``{Err[-1]}``.
Nothing in this module imports IPython; it works on plain mappings.
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .._core.errors import ConfigError
from .._core.secrets import scrub
from .._core.types import MediaKind, MediaPart

__all__ = [
    "ErrorLog",
    "ErrorRecord",
    "PromptError",
    "UnknownNameError",
    "code_spans",
    "render",
    "resolve",
    "to_media_part",
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
    spans = code_spans(template)
    span_i = 0
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch not in "{}":
            nxt = _next_brace(template, i)
            buf.append(template[i:nxt])
            i = nxt
            continue
        if template.startswith("{{", i):
            escaped = _PLACEHOLDER.match(template, i + 1)
            if escaped is not None and template.startswith("}", escaped.end()):
                buf.append(escaped.group())  # {{name}} -> {name}
                i = escaped.end() + 1
                continue
        match = _PLACEHOLDER.match(template, i) if ch == "{" else None
        if match is None:
            buf.append(ch)
            i += 1
            continue
        while span_i < len(spans) and spans[span_i][1] <= i:
            span_i += 1
        in_code = span_i < len(spans) and spans[span_i][0] <= i < spans[span_i][1]
        try:
            value = resolve(match["field"], namespace, extras)
        except UnknownNameError as exc:
            if in_code:
                buf.append(match.group())
                i = match.end()
                continue
            raise UnknownNameError(
                f"{{{match['field']}}} in the prompt: no variable named {exc.name!r} in the "
                f"notebook. Define it first, or write {{{{{match['field']}}}}} for literal braces "
                "(unknown names inside ``` code blocks, `inline code` and $math$ stay as written; "
                "%%llm --raw turns interpolation off).",
                exc.name,
            ) from None
        media = None if match["conv"] or match["spec"] else to_media_part(value)
        if media is not None:
            if buf:
                out.append("".join(buf))
                buf = []
            out.append(media)
        else:
            buf.append(_format(value, match))
        i = match.end()
    if buf:
        out.append("".join(buf))
    return _merge(out)


def _next_brace(text: str, start: int) -> int:
    positions = [p for p in (text.find("{", start), text.find("}", start)) if p != -1]
    return min(positions) if positions else len(text)


def _format(value: Any, match: re.Match[str]) -> str:
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


# --- recent errors, for {Err[-1]} ----------------------------------------------------------


@dataclass(frozen=True)
class ErrorRecord:
    """One failed cell: ``str()`` is a readable traceback (cell frames only, no colours)."""

    execution_count: int | None
    type: str
    message: str
    traceback: str
    cell: str = ""

    def __str__(self) -> str:
        return self.traceback

    @classmethod
    def from_exception(
        cls, exc: BaseException, execution_count: int | None = None, cell: str = ""
    ) -> ErrorRecord:
        te = traceback.TracebackException.from_exception(exc)
        frames = [f for f in te.stack if not _is_machinery_frame(f.filename)]
        te.stack = traceback.StackSummary.from_list(frames)
        lines = list(te.format())
        if not frames and lines and lines[0].startswith("Traceback"):
            lines = lines[1:]
        # {Err[-1]} sends this text to a model: no key the package knows may be in it, even
        # one raised by code that is not ours.
        text = scrub("".join(lines).rstrip())
        return cls(execution_count, type(exc).__name__, scrub(str(exc)), text, cell)


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)).replace("\\", "/") + "/"
_MACHINERY = (
    "/IPython/core/",
    "/IPython/utils/",
    "/concurrent/futures/",
    "/asyncio/",
    "/contextlib.py",
)


def _is_machinery_frame(filename: str) -> bool:
    """Frames of IPython, this package and the thread/loop plumbing between them tell the
    model nothing about the user's bug."""
    normalized = filename.replace("\\", "/")
    return normalized.startswith(_PACKAGE_DIR) or any(m in normalized for m in _MACHINERY)


class ErrorLog:
    """The errors of recent cells, newest last.

    ``log[-1]`` is the latest error, ``log[-2]`` the one before; ``log[7]`` the error of cell
    7 (like ``Out[7]``). Thread safety: written from the kernel's main thread only.
    """

    def __init__(self, limit: int = 50) -> None:
        self.limit = limit
        self._records: list[ErrorRecord] = []

    def record(self, record: ErrorRecord) -> None:
        self._records.append(record)
        del self._records[: -self.limit]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[ErrorRecord]:
        return iter(self._records)

    def __getitem__(self, key: int) -> ErrorRecord:
        if not isinstance(key, int):
            raise TypeError("Err takes -1 (latest error), -2, ... or a cell number")
        if not self._records:
            raise IndexError("no cell has failed yet in this kernel")
        if key < 0:
            if -key > len(self._records):
                raise IndexError(f"only {len(self._records)} error(s) recorded")
            return self._records[key]
        for rec in reversed(self._records):
            if rec.execution_count == key:
                return rec
        counts = ", ".join(str(r.execution_count) for r in self._records[-10:])
        raise KeyError(f"cell {key} did not fail (recent failed cells: {counts})")

    def __repr__(self) -> str:
        return f"ErrorLog({len(self)} errors)"
