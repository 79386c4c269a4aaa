"""A conversation on disk and on screen: save/load (JSON plus its media by hash), exports,
snapshots and forks.

:class:`Persisted` is the part of :class:`~llm_magics._chat.memory.Conversation` that turns
it into data and back. A saved conversation holds no key (the export rules of
:mod:`llm_magics._chat.export`) and loads back equal: settings, every turn with its tool steps,
the summary, and the media (their bytes in ``NAME.media/`` beside the JSON).

Thread safety: a conversation is meant for one thread.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from typing_extensions import Self

from .._client.inputs import to_messages
from .._core.errors import ConfigError
from .._core.types import MediaPart, Message
from .export import (
    SAVED_KIND,
    markdown_of,
    read_saved,
    redact_secrets,
    saved_media,
    saved_part,
    text_of,
    write_export,
    write_saved,
)
from .summary import Summary
from .turns import Turn

__all__ = ["ExportFormat", "Persisted"]

ExportFormat = Literal["md", "markdown", "json", "text", "txt"]


class Persisted:
    """Saving, loading and exporting a conversation (a mixin of Conversation)."""

    name: str
    system: str | None
    model: str | None
    template: Any
    max_tokens: int | None
    max_history: int | None
    truncation: str
    summary_model: str | None
    turns: list[Turn]
    summary: Summary

    def __init__(self, name: str = "default", **settings: Any) -> None:
        raise NotImplementedError  # Conversation's

    # --- branches, checkpoints, files ----------------------------------------------------

    def fork(self, name: str | None = None) -> Self:
        """A copy to go on differently: same settings, turns and summary, its own future."""
        twin = type(self).from_dict(self.to_dict(), media=self.media())
        twin.name = name or f"{self.name}-fork"
        return twin

    def snapshot(self) -> dict[str, Any]:
        """The state to go back to with :meth:`restore` (a plain, JSON-safe dict)."""
        return json.loads(json.dumps(self.to_dict()))

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Go back to a :meth:`snapshot` (turns, summary and system message; the name
        stays). Media parts still in this conversation keep their bytes."""
        back = type(self).from_dict(snapshot, media=self.media())
        self.system, self.summary, self.turns = back.system, back.summary, back.turns

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the conversation as JSON (keys redacted) and its media's bytes beside it
        (``NAME.media/``, one file per content hash); :meth:`load` reads both back."""
        text = self.to_json()
        write_saved(text, self.media().values(), path)
        return text

    def media(self) -> dict[str, MediaPart]:
        """The media of this conversation's questions, by content hash."""
        return {p.content_hash: p for t in self.turns for p in _media_of(t)}

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read a conversation written by :meth:`save` or ``export(..., format="json")``.
        Media whose bytes are not beside the file come back as text placeholders (a
        warning says how many)."""
        data, found = read_saved(path)
        missing = sum(1 for part in saved_media(data["turns"]) if part["sha256"] not in found)
        if missing:
            warnings.warn(
                f"{missing} media part(s) of {path} were not found in "
                f"{Path(path).with_suffix('.media')}; they come back as text placeholders",
                UserWarning,
                stacklevel=2,
            )
        return cls.from_dict(data, media=found)

    # --- export --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": SAVED_KIND,
            "name": self.name,
            "system": self.system,
            "model": self.model,
            "max_history": self.max_history,
            "max_tokens": self.max_tokens,
            "truncation": self.truncation,
            "summary_model": self.summary_model,
            "template": self.template.name if self.template is not None else None,
            "summary": self.summary.to_dict() if self.summary or self.summary.calls else None,
            "turns": [t.to_dict() for t in self.turns],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return redact_secrets(json.dumps(self.to_dict(), indent=indent, ensure_ascii=False))

    def to_markdown(self) -> str:
        return markdown_of(self)

    def to_text(self) -> str:
        """Plain text: ``You:`` and the model's name before each message."""
        return text_of(self)

    def export(
        self, path: str | os.PathLike[str] | None = None, *, format: ExportFormat | None = None
    ) -> str:
        """The conversation as Markdown, JSON or plain text (never any key); written to
        ``path`` too when given (the format then defaults from its suffix)."""
        suffix = Path(path).suffix.lstrip(".") if path is not None else ""
        fmt = format or (suffix if suffix in ("json", "md", "txt") else "md")
        if fmt not in ("md", "markdown", "json", "text", "txt"):
            raise ConfigError(f"export format must be md, json or text; got {fmt!r}")
        if fmt == "json":
            text = self.to_json()
        elif fmt in ("text", "txt"):
            text = self.to_text()
        else:
            text = self.to_markdown()
        if path is not None:
            write_export(text, path)
        return text

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, media: Mapping[str, MediaPart] | None = None
    ) -> Self:
        """A conversation from :meth:`to_dict`'s form (settings checked as in ``__init__``);
        media saved by hash take their bytes from ``media``, else become text placeholders."""
        kind = data.get("kind", SAVED_KIND)
        if kind != SAVED_KIND:
            raise ConfigError(f"not a saved conversation: its kind is {kind!r}, not {SAVED_KIND!r}")
        conv = cls(
            data.get("name") or "default",
            system=data.get("system"),
            model=data.get("model"),
            max_tokens=data.get("max_tokens"),
            truncation=data.get("truncation") or "drop_oldest",
            summary_model=data.get("summary_model"),
            max_history=data.get("max_history"),
        )
        conv.summary = Summary.from_dict(data.get("summary"))
        for t in data.get("turns", []):
            steps = to_messages(t["steps"]) if t.get("steps") else []
            conv.turns.append(Turn.from_dict(t, _saved_user(t.get("user"), media or {}), steps))
        return conv


def _saved_user(user: Any, media: Mapping[str, MediaPart]) -> Message | None:
    if user is None:
        return None
    if not (isinstance(user, dict) and "role" in user):
        return Message("user", str(user))
    content = user.get("content")
    if isinstance(content, list):
        user = {**user, "content": [saved_part(c, media) for c in content]}
    return to_messages([user])[0]


def _media_of(turn: Turn) -> list[MediaPart]:
    if turn.user is None or isinstance(turn.user.content, str):
        return []
    return [p for p in turn.user.content if isinstance(p, MediaPart)]
