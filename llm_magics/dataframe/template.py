"""Row templates for ``df.llm``: ``"Classify: {review}"`` filled from each row, once.

The rules are those of ``%%llm`` prompts (:mod:`llm_magics._chat.interpolation`), with columns in place of
notebook variables:

* ``{column}`` is the row's value in that column; ``.attr`` / ``[key]`` steps, ``!r`` and
  ``:spec`` work as in :meth:`str.format` (``{price:.2f}``, ``{meta[title]}``).
* A column whose name is not a Python identifier is written as is: ``{review text}``, ``{0}``.
* ``{photo:image}`` / ``{clip:audio}``: the value (a path, URL, bytes, PIL image, ``lm.Image``)
  becomes an image / audio part of the message at that position. ``images=["photo"]`` and
  ``audio=["clip"]`` append whole columns after the text instead.
* ``{{`` and ``}}`` are literal braces; braces that do not form a placeholder (``{"a": 1}``,
  ``{ return x; }``) are literal text. The template is read once, when compiled: braces inside
  a value are never interpreted.
* A placeholder naming no column is an error that names it and lists the columns, except inside
  Markdown code (fenced blocks, inline spans), where it stays as written.

Which rows are sent, with missing values (``na=``), a callable template, and the dedup of
identical prompts, is planned in :mod:`llm_magics.dataframe.plan`.

Rendering produces a row's prompt: a string, or a tuple of strings and :class:`MediaRef` when
media are involved. Media are loaded only when the prompt is sent (:func:`materialize`), so a
10,000-image column is never in memory at once.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._chat.interpolation import _PLACEHOLDER, code_spans, resolve, to_media_part
from .._core.errors import ConfigError
from .._core.types import MediaKind, MediaPart, Message, TextPart

__all__ = [
    "MediaRef",
    "RowTemplate",
    "SystemPrompt",
    "join",
    "materialize",
    "unknown_column_message",
]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MEDIA_SPECS: dict[str, MediaKind] = {"image": "image", "audio": "audio"}


@dataclass(frozen=True)
class MediaRef:
    """A media value of one row, identified for dedup without loading it."""

    kind: MediaKind
    ident: Hashable
    value: Any = field(compare=False, hash=False, repr=False)

    @classmethod
    def of(cls, kind: MediaKind, value: Any) -> MediaRef:
        ident: Hashable
        if isinstance(value, str):
            ident = ("s", value)
        elif isinstance(value, os.PathLike):
            ident = ("s", os.fspath(value))
        elif isinstance(value, bytes | bytearray | memoryview):
            ident = ("b", hashlib.sha256(bytes(value)).hexdigest())
        elif isinstance(value, MediaPart):
            ident = ("h", value.content_hash)
        else:  # PIL images, arrays, figures: the same object means the same content
            ident = ("id", id(value))
        return cls(kind, ident, value)


@dataclass(frozen=True)
class SystemPrompt:
    """The system prompt of one row's prompt, when an ``lm.Template``'s system text uses a
    column (the first item of the prompt tuple; :func:`materialize` makes it a system
    message). See :mod:`llm_magics.dataframe.templated`."""

    text: str


@dataclass(frozen=True)
class _Field:
    column: Hashable
    root: str
    path: str | None  # the whole field when it has .attr / [key] steps
    conv: str | None
    spec: str
    media: MediaKind | None
    text: str


class RowTemplate:
    """A template compiled against a frame's columns. ``columns`` are the columns it uses."""

    def __init__(
        self,
        template: str,
        columns: Sequence[Hashable],
        *,
        aliases: Mapping[str, Hashable] | None = None,
    ) -> None:
        self.template = template
        names: dict[str, Hashable] = {str(c): c for c in columns}
        names.update(aliases or {})
        self._names = names
        self.segments: list[str | _Field] = []
        self._parse(template, names, list(columns))
        seen: dict[Hashable, None] = {}
        for seg in self.segments:
            if isinstance(seg, _Field):
                seen.setdefault(seg.column)
        self.columns: list[Hashable] = list(seen)

    @property
    def has_fields(self) -> bool:
        return bool(self.columns)

    def _parse(self, template: str, names: dict[str, Hashable], columns: list[Hashable]) -> None:
        special = sorted((k for k in names if not _IDENT.fullmatch(k)), key=len, reverse=True)
        spans = code_spans(template)
        buf: list[str] = []
        i, n = 0, len(template)

        def emit(f: _Field) -> None:
            if buf:
                self.segments.append("".join(buf))
                buf.clear()
            self.segments.append(f)

        while i < n:
            ch = template[i]
            if ch not in "{}":
                nxt = min(
                    (p for p in (template.find("{", i), template.find("}", i)) if p >= 0), default=n
                )
                buf.append(template[i:nxt])
                i = nxt
                continue
            if template.startswith("{{", i) or template.startswith("}}", i):
                buf.append(ch)
                i += 2
                continue
            if ch == "{":
                found = _match_special(template, i, special)
                if found is not None:
                    name, media, end = found
                    emit(_Field(names[name], name, None, None, "", media, template[i:end]))
                    i = end
                    continue
                m = _PLACEHOLDER.match(template, i)
                if m is not None:
                    full = m["field"]
                    root_match = _IDENT.match(full)
                    assert root_match is not None
                    root = root_match.group()
                    spec = m["spec"] or ""
                    media = _MEDIA_SPECS.get(spec) if not m["conv"] else None
                    if root in names:
                        path = full if full != root else None
                        emit(_Field(names[root], root, path, m["conv"], spec, media, m.group()))
                        i = m.end()
                        continue
                    if not any(a <= i < b for a, b in spans):
                        raise ConfigError(unknown_column_message(full, root, columns))
                    buf.append(m.group())  # pasted code keeps its own braces
                    i = m.end()
                    continue
            buf.append(ch)
            i += 1
        if buf:
            self.segments.append("".join(buf))

    def render(self, values: Mapping[Hashable, Any], missing: set[Hashable]) -> Any:
        """The prompt of one row (str, or tuple of str and MediaRef); ``missing`` columns
        render empty (text) or are left out (media)."""
        out: list[Any] = []
        for seg in self.segments:
            if isinstance(seg, str):
                out.append(seg)
                continue
            if seg.column in missing:
                continue
            value = values[seg.column]
            if seg.path is not None:
                value = _step(seg, value)
            if seg.media is not None:
                out.append(MediaRef.of(seg.media, value))
            else:
                out.append(_format(seg, value))
        return join(out)


def join(items: list[Any]) -> Any:
    """Adjacent strings merged; a prompt without media is a plain string."""
    merged: list[Any] = []
    for item in items:
        if isinstance(item, str):
            if not item:
                continue
            if merged and isinstance(merged[-1], str):
                merged[-1] += item
                continue
        merged.append(item)
    if all(isinstance(m, str) for m in merged):
        return "".join(merged)
    return tuple(merged)


def _match_special(template: str, i: int, special: list[str]) -> tuple[str, Any, int] | None:
    for name in special:
        head = "{" + name
        if not template.startswith(head, i):
            continue
        rest = i + len(head)
        if template.startswith("}", rest):
            return name, None, rest + 1
        for spec, kind in _MEDIA_SPECS.items():
            if template.startswith(f":{spec}}}", rest):
                return name, kind, rest + len(spec) + 2
    return None


def unknown_column_message(field_text: str, root: str, columns: list[Hashable]) -> str:
    """The error for ``{field_text}`` naming no column: the nearest name and the columns."""
    shown = [str(c) for c in columns]
    near = difflib.get_close_matches(root, shown, n=1)
    hint = f" Did you mean {{{near[0]}}}?" if near else ""
    listing = ", ".join(shown[:30]) + (f", ... ({len(shown)} in all)" if len(shown) > 30 else "")
    return (
        f"{{{field_text}}} in the template: no column named {root!r}.{hint} The columns are: "
        f"{listing or '(none)'}. Write {{{{{field_text}}}}} for literal braces."
    )


def _step(seg: _Field, value: Any) -> Any:
    assert seg.path is not None
    return resolve(seg.path, {seg.root: value})


def _format(seg: _Field, value: Any) -> str:
    if type(value) is str and not seg.conv and not seg.spec:
        return value
    if seg.conv == "r":
        value = repr(value)
    elif seg.conv == "a":
        value = ascii(value)
    elif seg.conv == "s":
        value = str(value)
    try:
        return format(value, seg.spec)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{seg.text}: cannot format a {type(value).__name__} with spec {seg.spec!r}: {exc}"
        ) from None


def materialize(prompt: Any) -> Any:
    """What ``achat`` takes: MediaRefs become media parts (files are read here, once the
    prompt is about to be sent); a prompt led by a system prompt (an ``lm.Template`` whose
    system text uses a column) becomes a system and a user message."""
    if not isinstance(prompt, tuple):
        return prompt
    if prompt and isinstance(prompt[0], SystemPrompt):
        rest = prompt[1:]
        user = rest[0] if len(rest) == 1 and isinstance(rest[0], str) else materialize(rest)
        if not isinstance(user, str):
            user = [TextPart(p) if isinstance(p, str) else p for p in user]
        return [Message("system", prompt[0].text), Message("user", user)]
    parts: list[Any] = []
    for item in prompt:
        if isinstance(item, MediaRef):
            part = to_media_part(item.value, item.kind)
            if part is None:  # pragma: no cover - to_media_part with a kind never returns None
                raise ValueError(f"cannot use a {type(item.value).__name__} as {item.kind}")
            parts.append(part)
        else:
            parts.append(item)
    return parts
