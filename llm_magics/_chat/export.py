"""Conversations on disk and on screen: Markdown, plain text and JSON exports that never carry
a key, and reading a saved conversation back with a clear refusal for anything else.

Exports hold messages, model ids and token counts, never credentials: media are written as
their MIME type and content hash, and any API key value found in the environment, or held by
the package, is redacted from the text before it is written.

Thread safety: pure functions (writing a file is one call).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .._core.errors import ConfigError
from .._core.secrets import scrub
from .._core.types import MediaPart, Message, TextPart

__all__ = [
    "SAVED_KIND",
    "markdown_of",
    "media_folder",
    "read_saved",
    "redact_secrets",
    "saved_media",
    "saved_part",
    "text_of",
    "write_export",
    "write_saved",
]


#: The ``kind`` field of a saved conversation (files without one are read as this kind).
SAVED_KIND = "llm_magics.conversation"


class _Turn(Protocol):
    user: Message | None
    answer: str | None
    model: str
    usage: Any
    steps: list[Message]


class _Summary(Protocol):
    text: str
    covers: int


class Conversation(Protocol):
    """What an export reads of a conversation (memory.Conversation; a Protocol, so this
    module stays below memory.py, which uses it)."""

    name: str
    system: str | None

    @property
    def summary(self) -> _Summary: ...

    @property
    def turns(self) -> Sequence[_Turn]: ...


def markdown_of(conv: Conversation) -> str:
    lines = [f"# Conversation `{conv.name}`", ""]
    if conv.system:
        lines += [f"*System:* {conv.system}", ""]
    if conv.summary.text:
        lines += [f"*Summary of turns 1-{conv.summary.covers}:* {conv.summary.text}", ""]
    if not conv.turns:
        lines += ["*(no turns yet)*", ""]
    for i, turn in enumerate(conv.turns, 1):
        if turn.user is not None:
            lines += [f"## {i}. You", "", _message_markdown(turn.user), ""]
        lines += [f"> {step}" for step in _steps(turn.steps)]
        if turn.steps:
            lines.append("")
        if turn.answer is not None:
            tokens = f", {turn.usage.input_tokens} → {turn.usage.output_tokens} tokens"
            name = turn.model or "assistant"
            lines += [f"**{name}**{tokens if turn.usage.total_tokens else ''}"]
            lines += ["", turn.answer, ""]
    return redact_secrets("\n".join(lines).rstrip() + "\n")


def text_of(conv: Conversation) -> str:
    lines = [f"Conversation {conv.name}"]
    if conv.system:
        lines.append(f"System: {conv.system}")
    if conv.summary.text:
        lines.append(f"Summary of turns 1-{conv.summary.covers}: {conv.summary.text}")
    for turn in conv.turns:
        lines.append("")
        if turn.user is not None:
            lines.append(f"You: {_message_markdown(turn.user)}")
        lines += [f"  {step}" for step in _steps(turn.steps)]
        if turn.answer is not None:
            lines.append(f"{turn.model or 'Assistant'}: {turn.answer}")
    return redact_secrets("\n".join(lines) + "\n")


def write_export(text: str, path: str | os.PathLike[str]) -> None:
    target = Path(path).expanduser()
    if not target.parent.is_dir():
        raise ConfigError(
            f"cannot export to {target}: the folder {target.parent} does not exist. "
            "Create it first, or give a path in an existing folder."
        )
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot export to {target}: {exc.strerror}") from exc


def media_folder(path: str | os.PathLike[str]) -> Path:
    """Where :meth:`Conversation.save` keeps the bytes of a conversation's media: beside the
    JSON file, named after it (``trip.json`` -> ``trip.media/``), one file per content hash."""
    return Path(path).expanduser().with_suffix(".media")


def write_saved(text: str, media: Iterable[MediaPart], path: str | os.PathLike[str]) -> None:
    """Write a saved conversation and the bytes of its media (by hash, each once)."""
    write_export(text, path)
    parts = {p.content_hash: p for p in media if p.data is not None}
    if not parts:
        return
    folder = media_folder(path)
    try:
        folder.mkdir(exist_ok=True)
        for digest, part in parts.items():
            target = folder / digest
            if not target.exists():
                target.write_bytes(part.data)  # type: ignore[arg-type]
    except OSError as exc:
        raise ConfigError(f"cannot save the media of {path} in {folder}: {exc.strerror}") from exc


def read_saved(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, MediaPart]]:
    """The dict of a saved conversation, and the media found beside it by hash (only those
    whose bytes still hash to the name they were saved under)."""
    source = Path(path).expanduser()
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"cannot load {source}: no such file") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(
            f"cannot load {source}: it is not JSON ({exc}); give a file written by "
            "Conversation.save or export(..., format='json')"
        ) from None
    turns = data.get("turns") if isinstance(data, dict) else None
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        raise ConfigError(
            f"cannot load {source}: it is JSON but not a saved conversation (no list of "
            "turns); give a file written by Conversation.save or export(..., format='json')"
        )
    kind = data.get("kind", SAVED_KIND)
    if kind != SAVED_KIND:
        raise ConfigError(
            f"cannot load {source}: it is not a saved conversation (its kind is {kind!r}, not "
            f"{SAVED_KIND!r}); give a file written by Conversation.save"
        )
    found: dict[str, MediaPart] = {}
    folder = media_folder(source)
    for part in saved_media(turns):
        media = _media_file(part, folder)
        if media is not None:
            found[media.content_hash] = media
    return data, found


def saved_media(turns: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """The media parts (``{"type", "mime_type", "sha256"}``) of saved turns' user messages."""
    for t in turns:
        user = t.get("user") if isinstance(t, dict) else None
        content = user.get("content") if isinstance(user, dict) else None
        if isinstance(content, list):
            yield from (c for c in content if isinstance(c, dict) and "sha256" in c)


def saved_part(part: Any, media: Mapping[str, MediaPart]) -> Any:
    """A saved content part made usable again: text as it is, media from ``media`` (by
    hash) or else a text placeholder naming its type and hash."""
    if not isinstance(part, dict) or "sha256" not in part:
        return part
    return media.get(str(part["sha256"])) or TextPart(_media_placeholder(part))


def _media_file(part: dict[str, Any], folder: Path) -> MediaPart | None:
    digest, kind = str(part.get("sha256", "")), part.get("type")
    if not digest.isalnum() or kind not in ("image", "audio", "document"):
        return None
    try:
        data = (folder / digest).read_bytes()
    except OSError:
        return None
    media = MediaPart(kind, str(part.get("mime_type") or ""), data=data)
    return media if media.content_hash == digest else None


def _steps(steps: Sequence[Message]) -> list[str]:
    """One line per tool call and per result: ``called f({...})``, ``f -> result``."""
    lines = []
    for m in steps:
        for call in m.tool_calls:
            lines.append(f"called {call.name}({json.dumps(call.arguments, ensure_ascii=False)})")
        if m.role == "tool":
            text = " ".join(m.text.split())
            lines.append(f"{m.name or 'tool'} -> {text[:200]}{'...' if len(text) > 200 else ''}")
    return lines


def _message_markdown(message: Message) -> str:
    out = []
    for part in message.parts:
        if isinstance(part, TextPart):
            out.append(part.text)
        elif isinstance(part, MediaPart):
            out.append(f"*[{part.kind}: {part.mime_type}, sha256 {part.content_hash[:12]}]*")
    return "\n\n".join(out)


def _media_placeholder(part: dict[str, Any]) -> str:
    return f"[{part.get('type')}: {part.get('mime_type')}, sha256 {str(part.get('sha256'))[:12]}]"


_SECRET_ENV = re.compile(r"(_API_KEYS?|_TOKEN|_SECRET)$")


def redact_secrets(text: str) -> str:
    """``text`` with every API key configured in the environment, or held by the package,
    replaced by a masked form.

    Keys reach a conversation only if a user pastes one into a prompt; an export must not
    carry it further.
    """
    secrets: set[str] = set()
    for name, value in os.environ.items():
        if _SECRET_ENV.search(name):
            secrets.update(v.strip() for v in value.split(","))
    for secret in sorted((s for s in secrets if len(s) >= 8), key=len, reverse=True):
        text = text.replace(secret, f"[redacted key ...{secret[-4:]}]")
    # And every key the package holds (api_key=, registered servers), wherever it came from.
    return scrub(text)
