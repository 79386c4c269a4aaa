"""What users pass as a prompt, turned into :class:`~llm_magics._core.types.Message` objects.

``chat`` takes a string, a list of text and media parts, a Message, OpenAI-style message dicts,
or a list of those; images and audio may be anything :func:`~llm_magics._media.objects.as_media_part`
understands (paths, arrays, PIL images, figures, ``lm.Image``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from .._core.errors import ConfigError
from .._core.types import MediaPart, Message, Part, TextPart, ToolCall
from .._media.objects import as_media_part

__all__ = ["to_messages"]


def to_messages(prompt: Any) -> list[Message]:
    """Normalise what a user passes to ``chat``: a string, a list of parts, a Message,
    OpenAI-style message dicts, or a list of those."""
    if isinstance(prompt, str):
        return [Message("user", prompt)]
    if isinstance(prompt, Message):
        return [prompt]
    if isinstance(prompt, Mapping):
        return [_message_from_dict(prompt)]
    if isinstance(prompt, Iterable):
        items = list(prompt)
        if items and all(
            isinstance(i, Message) or (isinstance(i, Mapping) and "role" in i) for i in items
        ):
            return [i if isinstance(i, Message) else _message_from_dict(i) for i in items]
        return [Message("user", _parts_of(items))]
    return [Message("user", [_to_part(prompt)])]


def _parts_of(items: list[Any]) -> list[Part]:
    """The parts of a list prompt. Plain strings side by side are separate pieces of text
    (``["Hello", "world"]``), so they are joined by a newline, never glued together; explicit
    TextParts are fragments of one text (a rendered cell) and stay as they are."""
    parts: list[Part] = []
    after_plain = False
    for item in items:
        if isinstance(item, str) and after_plain:
            parts[-1] = TextPart(f"{parts[-1].text}\n{item}")  # type: ignore[union-attr]
        else:
            parts.append(_to_part(item))
        after_plain = isinstance(item, str)
    return parts


def _to_part(item: Any) -> Part:
    if isinstance(item, str):
        return TextPart(item)
    if isinstance(item, TextPart | MediaPart):
        return item
    if isinstance(item, Mapping) and "type" in item:
        return _part_from_openai(item)
    return as_media_part(item)


def _part_from_openai(item: Mapping[str, Any]) -> Part:
    kind = item["type"]
    if kind == "text":
        return TextPart(str(item["text"]))
    if kind == "image_url":
        url = (
            item["image_url"]["url"]
            if isinstance(item["image_url"], Mapping)
            else item["image_url"]
        )
        if url.startswith("data:"):
            header, _, payload = url.partition(",")
            mime = header[5:].split(";")[0] or "application/octet-stream"
            return MediaPart("image", mime, data=_b64decode(payload, "image_url data URL"))
        return MediaPart("image", "image/*", url=url)
    if kind == "input_audio":
        audio = item["input_audio"]
        fmt = audio.get("format", "wav")
        return MediaPart("audio", f"audio/{fmt}", data=_b64decode(audio["data"], "input_audio"))
    raise ConfigError(
        f"message content part of type {kind!r} is not understood; use text, image_url or "
        "input_audio parts, or pass lm.Image / lm.Audio objects."
    )


def _b64decode(payload: str, what: str) -> bytes:
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{what} is not valid base64: {exc}") from exc


def _message_from_dict(d: Mapping[str, Any]) -> Message:
    role = d.get("role")
    if role not in ("system", "user", "assistant", "tool"):
        raise ConfigError(
            f"message role must be system, user, assistant or tool; got {role!r} in {dict(d)!r:.200}"
        )
    content = d.get("content") or ""
    parts: str | list[Part]
    parts = content if isinstance(content, str) else [_to_part(c) for c in content]
    calls = []
    for tc in d.get("tool_calls") or []:
        fn = tc.get("function", tc)
        calls.append(ToolCall.from_raw(tc.get("id", ""), fn["name"], fn.get("arguments")))
    return Message(role, parts, calls, d.get("tool_call_id"), d.get("name"))
