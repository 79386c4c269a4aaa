"""What users pass as a prompt, turned into :class:`~llm_magics._core.types.Message` objects.

``chat`` takes a string, a list of text and media parts, a Message, OpenAI-style message dicts,
or a list of those; images and audio may be anything :func:`~llm_magics._media.objects.as_media_part`
understands (paths, arrays, PIL images, figures, ``lm.Image``).

A prompt template (``lm.Template``, or any object :func:`~llm_magics._core.templating.is_prompt_template`
recognises) is rendered first: :func:`fill_template` takes the keyword arguments of the call
that are its variables, and leaves the others as request options.
"""

from __future__ import annotations

import base64
import binascii
import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from .._core.errors import ConfigError
from .._core.options import CHAT_OPTIONS, unknown_option_error
from .._core.templating import is_prompt_template
from .._core.types import MediaPart, Message, Part, TextPart, ToolCall
from .._media.objects import as_media_part

__all__ = ["fill_template", "neither_option_nor_variable", "to_messages"]


def to_messages(prompt: Any) -> list[Message]:
    """Normalise what a user passes to ``chat``: a string, a list of parts, a Message,
    OpenAI-style message dicts, or a list of those (a template renders with its defaults)."""
    if isinstance(prompt, str):
        return [Message("user", prompt)]
    if is_prompt_template(prompt):
        return to_messages(prompt.render())
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


def fill_template(prompt: Any, options: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``prompt`` rendered when it is a template, with the keyword arguments of the call that
    are its variables; returns the messages and the remaining (request) options.

    An option name always means the option (templates cannot use those names); any other
    keyword must be a variable of the template: a typo is a ConfigError that names the
    closest variable or option, before anything is rendered or sent."""
    if not is_prompt_template(prompt):
        return prompt, options if isinstance(options, dict) else dict(options)
    variables = set(prompt.variables)
    values = {k: v for k, v in options.items() if k in variables and k not in CHAT_OPTIONS}
    rest = {k: v for k, v in options.items() if k not in values}
    for name in rest:
        if name not in CHAT_OPTIONS:
            raise neither_option_nor_variable(name, prompt)
    return to_messages(prompt.render(**values)), rest


def neither_option_nor_variable(name: str, template: Any) -> ConfigError:
    """The error for a keyword that is no option of chat and no variable of ``template``."""
    listing = ", ".join(template.variables) or "none"
    close = difflib.get_close_matches(name, template.variables, n=1, cutoff=0.6)
    if close:
        return ConfigError(
            f"{name}= is neither an option of chat nor a variable of template "
            f"{template.name!r}. Did you mean {close[0]}=? Its variables: {listing}."
        )
    base = unknown_option_error(name, "chat")
    return ConfigError(
        f"{base.message} It is no variable of template {template.name!r} either (its "
        f"variables: {listing})."
    )
