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
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from .._core.errors import ConfigError
from .._core.secrets import scrub
from .._core.types import MediaPart, Message, TextPart


class _Turn(Protocol):
    user: Message
    answer: str
    model: str
    usage: Any


class Conversation(Protocol):
    """What an export reads of a conversation (memory.Conversation; a Protocol, so this
    module stays below memory.py, which uses it)."""

    name: str
    system: str | None

    @property
    def turns(self) -> Sequence[_Turn]: ...


__all__ = ["markdown_of", "read_saved", "redact_secrets", "text_of", "write_export"]


def markdown_of(conv: Conversation) -> str:
    lines = [f"# Conversation `{conv.name}`", ""]
    if conv.system:
        lines += [f"*System:* {conv.system}", ""]
    if not conv.turns:
        lines += ["*(no turns yet)*", ""]
    for i, turn in enumerate(conv.turns, 1):
        lines += [f"## {i}. You", "", _message_markdown(turn.user), ""]
        tokens = f", {turn.usage.input_tokens} → {turn.usage.output_tokens} tokens"
        lines += [f"**{turn.model or 'assistant'}**{tokens if turn.usage.total_tokens else ''}"]
        lines += ["", turn.answer, ""]
    return redact_secrets("\n".join(lines).rstrip() + "\n")


def text_of(conv: Conversation) -> str:
    lines = [f"Conversation {conv.name}"]
    if conv.system:
        lines.append(f"System: {conv.system}")
    for turn in conv.turns:
        lines += [
            "",
            f"You: {_message_markdown(turn.user)}",
            f"{turn.model or 'Assistant'}: {turn.answer}",
        ]
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


def read_saved(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The dict of a saved conversation, media parts turned into text placeholders."""
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
    if not isinstance(data, dict) or not isinstance(data.get("turns"), list):
        raise ConfigError(
            f"cannot load {source}: it is JSON but not a saved conversation (no list of "
            "turns); give a file written by Conversation.save or export(..., format='json')"
        )
    for t in data["turns"]:
        content = t.get("user", {}).get("content") if isinstance(t, dict) else None
        if isinstance(content, list):
            t["user"]["content"] = [
                c if c.get("type") == "text" else {"type": "text", "text": _media_placeholder(c)}
                for c in content
            ]
    return data


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
