"""Conversations: a named chat history that is sent along with each new prompt.

    conv = Conversation("review", system="You are a terse code reviewer.", model="local")
    conv.chat("Is this loop O(n^2)? ...")
    conv.chat("And how would you fix it?")          # the model sees the first exchange
    for piece in conv.stream("Show the fix"): ...   # recorded when the stream ends
    conv.messages("next?")                          # exactly what the next request sends
    conv.save("review.json"); Conversation.load("review.json")

``%%llm --session NAME`` and ``lm.session(NAME)`` share one :class:`Conversation` per name
(:mod:`llm_magics._chat.sessions`). The history sent with a prompt fits a token budget: the
model's context window less the answer's, or ``max_tokens=``; ``truncation=`` says which
turns are left out (:mod:`llm_magics._chat.budget`) or, with ``"summarize"``, folded into a
summary (:mod:`llm_magics._chat.summary`). Left-out turns stay in the record, so an export is
always complete.

Exports hold messages, model ids and token counts, never credentials: media are written as
their MIME type and content hash, and any API key value is redacted from the text.

Thread safety: a conversation is meant for one thread (a notebook's main thread); the store
guards its own dict with a lock.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .._client.inputs import to_messages
from .._core.errors import ConfigError
from .._core.types import MediaPart, Message, Response
from .._runtime import loop
from .budget import Fit, Truncation, check_strategy
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
from .recall import Recall
from .summary import Summary
from .turns import ConversationUsage, SummaryCall, Turn

if TYPE_CHECKING:
    from .._client.client import Client
    from .streaming import ConversationStream

__all__ = ["Conversation", "ConversationUsage", "SummaryCall", "Turn", "redact_secrets"]

ExportFormat = Literal["md", "markdown", "json", "text", "txt"]

SETTINGS = ("system", "model", "max_tokens", "truncation", "max_history", "summary_model")


class Conversation(Recall):
    """A named history of turns; :meth:`messages` builds the next request from it."""

    def __init__(
        self,
        name: str = "default",
        *,
        model: str | None = None,
        system: str | None = None,
        max_tokens: int | None = None,
        truncation: str = "drop_oldest",
        summary_model: str | None = None,
        max_history: int | None = None,
    ) -> None:
        self.name = name
        self.system: str | None = None
        self.model: str | None = None
        #: The history's token budget (None: the model's context window less the answer's).
        self.max_tokens: int | None = None
        self.truncation: Truncation = "drop_oldest"
        #: The model that writes summaries (None: the model of the call that needs one).
        self.summary_model: str | None = None
        self.max_history: int | None = None
        self.configure(
            system=system,
            model=model,
            max_tokens=max_tokens,
            truncation=truncation,
            summary_model=summary_model,
            max_history=max_history,
        )
        self.turns: list[Turn] = []
        #: The running summary of the oldest turns (``truncation="summarize"``).
        self.summary = Summary()
        #: How the last request was fitted into the budget (None: no budget applied).
        self.last_fit: Fit | None = None
        self._summary_failure_said = False

    def configure(self, **settings: Any) -> None:
        """Change settings (system, model, max_tokens, truncation, summary_model,
        max_history), each checked before any is applied."""
        unknown = [key for key in settings if key not in SETTINGS]
        if unknown:
            raise ConfigError(f"unknown session setting {unknown[0]!r}; use {', '.join(SETTINGS)}")
        history = settings.get("max_history")
        if history is not None and (not isinstance(history, int) or history < 0):
            raise ConfigError(f"max_history must be >= 0 or None; got {history!r}")
        budget = settings.get("max_tokens")
        if budget is not None and (not isinstance(budget, int) or budget < 1):
            raise ConfigError(f"max_tokens must be a positive number of tokens; got {budget!r}")
        if "truncation" in settings:
            settings["truncation"] = check_strategy(settings["truncation"])
        for key, value in settings.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        summary = f", summary of {self.summary.covers}" if self.summary else ""
        return f"Conversation({self.name!r}, {len(self.turns)} turns{summary})"

    def __len__(self) -> int:
        return len(self.turns)

    # --- writing the history by hand -----------------------------------------------------

    def add_user(self, content: Any) -> Turn:
        """Record a question; the next :meth:`chat` with no prompt answers it."""
        turn = Turn(_user_message(content), None)
        self.turns.append(turn)
        return turn

    def add_assistant(self, text: str) -> Turn:
        """Record an answer: to the waiting question of :meth:`add_user`, or on its own."""
        if self.turns and self.turns[-1].pending:
            self.turns[-1].answer = str(text)
            return self.turns[-1]
        turn = Turn(None, str(text))
        self.turns.append(turn)
        return turn

    def add(self, prompt: Any, response: Response | str) -> Turn:
        """Record an exchange. ``prompt`` is what :func:`to_messages` accepts, or None for
        the waiting question of :meth:`add_user`."""
        if prompt is None and self.turns and self.turns[-1].pending:
            turn = self.turns.pop()
            user = turn.user
        else:
            user = _user_message(prompt)
        if isinstance(response, Response):
            turn = Turn.answered(user, response)
        else:
            turn = Turn(user, str(response))
        self.turns.append(turn)
        return turn

    # --- asking --------------------------------------------------------------------------

    def chat(
        self,
        prompt: Any = None,
        *,
        model: str | None = None,
        client: Client | None = None,
        **options: Any,
    ) -> Response:
        """Ask with this conversation's history and system prompt, then record the turn.
        ``model=`` switches model for this call (any provider; the history goes along).
        With no prompt, answers the question waiting from :meth:`add_user`."""
        return loop.run(self.achat(prompt, model=model, client=client, **options))

    async def achat(
        self,
        prompt: Any = None,
        *,
        model: str | None = None,
        client: Client | None = None,
        **options: Any,
    ) -> Response:
        """:meth:`chat` for async code (``await conv.achat("...")``)."""
        client = self.client_for(model, client)
        request = await self.aprepare(prompt, client, options)
        response = await client.achat(request, **options)
        self.add(prompt, response)
        return response

    def stream(
        self,
        prompt: Any = None,
        *,
        model: str | None = None,
        client: Client | None = None,
        **options: Any,
    ) -> ConversationStream:
        """Iterate for the answer's text as it arrives; the turn is recorded when the stream
        ends (an interrupted answer is kept with what arrived, finish reason
        ``"interrupted"``). ``.response`` holds the whole Response after."""
        from .streaming import ConversationStream

        client = self.client_for(model, client)
        request = loop.run(self.aprepare(prompt, client, options))
        return ConversationStream(self, prompt, client, client.stream(request, **options))

    def client_for(self, model: str | None, client: Client | None = None) -> Client:
        """The client of a call: the one given, else ``model``'s, else the conversation's."""
        if client is not None:
            return client
        from .._client.registry import current_registry

        return current_registry().client(model or self.model)

    async def aprepare(
        self,
        prompt: Any,
        client: Client,
        options: dict[str, Any],
        *,
        max_history: int | None = None,
    ) -> list[Message]:
        """The messages of the next request to ``client`` (summarising first when the
        strategy asks for it); takes ``system`` out of ``options``. Sends nothing else."""
        if prompt is None and not (self.turns and self.turns[-1].pending):
            raise ConfigError(
                f"nothing to ask in conversation {self.name!r}: pass a prompt, or add_user() "
                "a question first"
            )
        system = options.pop("system", None) or self.system
        answer = options.get("max_tokens")
        if self.truncation == "summarize":
            await self.fold_to_fit(client, prompt, system, answer, max_history)
        return self.messages(
            prompt,
            max_history=max_history,
            model=client.model_id,
            answer_tokens=answer,
            system=system,
        )

    # --- branches, checkpoints, files ----------------------------------------------------

    def fork(self, name: str | None = None) -> Conversation:
        """A copy to go on differently: same settings, turns and summary, its own future."""
        twin = Conversation.from_dict(self.to_dict(), media=self.media())
        twin.name = name or f"{self.name}-fork"
        return twin

    def snapshot(self) -> dict[str, Any]:
        """The state to go back to with :meth:`restore` (a plain, JSON-safe dict)."""
        return json.loads(json.dumps(self.to_dict()))

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Go back to a :meth:`snapshot` (turns, summary and system message; the name
        stays). Media parts still in this conversation keep their bytes."""
        back = Conversation.from_dict(snapshot, media=self.media())
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
    def load(cls, path: str | os.PathLike[str]) -> Conversation:
        """Read a conversation written by :meth:`save` or ``export(..., format="json")``.
        Media whose bytes are not beside the file come back as text placeholders (a
        warning says how many)."""
        data, found = read_saved(path)
        missing = sum(1 for part in saved_media(data["turns"]) if part["sha256"] not in found)
        if missing:
            import warnings

            warnings.warn(
                f"{missing} media part(s) of {path} were not found in "
                f"{Path(path).with_suffix('.media')}; they come back as text placeholders",
                UserWarning,
                stacklevel=2,
            )
        return cls.from_dict(data, media=found)

    @property
    def usage(self) -> ConversationUsage:
        """Calls, tokens and cost of this conversation's turns and of its summaries."""
        return ConversationUsage.of(self.turns, self.summary.calls)

    def reset(self) -> None:
        """Forget every turn and the summary (the name, system prompt and settings stay)."""
        self.turns.clear()
        self.summary = Summary()

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
    ) -> Conversation:
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
            conv.turns.append(Turn.from_dict(t, _saved_user(t.get("user"), media or {})))
        return conv


def _user_message(prompt: Any) -> Message:
    """The user message to record for ``prompt`` (its last user message)."""
    users = [m for m in to_messages(prompt) if m.role == "user"]
    return users[-1] if users else Message("user", "")


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
