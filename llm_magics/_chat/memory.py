"""Conversations: a named chat history that is sent along with each new prompt.

    conv = Conversation("review", system="You are a terse code reviewer.", max_history=10)
    conv.chat("Is this loop O(n^2)? ...", model="local")
    conv.chat("And how would you fix it?")          # the model sees the first exchange
    print(conv.to_markdown())                       # or conv.export("review.json")

``%%llm --session NAME`` and ``lm.session(NAME)`` share one :class:`Conversation` per name
(:mod:`llm_magics._chat.sessions`). ``max_history`` limits how many earlier turns are *sent*
(the oldest are dropped from the request, never from the record, so an export stays complete).

Exports hold messages, model ids and token counts, never credentials: media are written as
their MIME type and content hash, and any API key value found in the environment is redacted
from the text before it is written.

Thread safety: a conversation is meant for one thread (a notebook's main thread); the store
guards its own dict with a lock.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .._client.inputs import to_messages
from .._core.errors import ConfigError
from .._core.types import Message, Response, Usage
from .budget import Fit, Truncation, check_strategy, fit
from .export import markdown_of, read_saved, redact_secrets, text_of, write_export

if TYPE_CHECKING:
    from .._client.client import Client

__all__ = ["Conversation", "ConversationUsage", "Turn", "redact_secrets"]

ExportFormat = Literal["md", "markdown", "json", "text", "txt"]


@dataclass
class Turn:
    """One exchange: what was asked, what came back, from which model, at what cost."""

    user: Message
    answer: str
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    finish_reason: str | None = None
    at: float = field(default_factory=time.time)

    def messages(self) -> list[Message]:
        return [self.user, Message("assistant", self.answer)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user.to_dict(),
            "assistant": self.answer,
            "model": self.model,
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
            },
            "cost": self.cost,
            "finish_reason": self.finish_reason,
            "at": self.at,
        }


@dataclass
class ConversationUsage:
    """What a conversation's turns took. ``cost`` sums the turns with a known price;
    ``unpriced`` counts the others."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def of(cls, turns: Iterable[Turn]) -> ConversationUsage:
        total = cls()
        for turn in turns:
            total.calls += 1
            total.input_tokens += turn.usage.input_tokens
            total.output_tokens += turn.usage.output_tokens
            if turn.cost is None:
                total.unpriced += 1
            else:
                total.cost += turn.cost
        return total


SETTINGS = ("system", "model", "max_tokens", "truncation", "max_history")


class Conversation:
    """A named history of turns; :meth:`messages` builds the next request from it."""

    def __init__(
        self,
        name: str = "default",
        *,
        system: str | None = None,
        max_history: int | None = None,
        model: str | None = None,
        max_tokens: int | None = None,
        truncation: str = "drop_oldest",
    ) -> None:
        self.name = name
        self.system: str | None = None
        self.max_history: int | None = None
        self.model: str | None = None
        #: The history's token budget (None: the model's context window less the answer's).
        self.max_tokens: int | None = None
        self.truncation: Truncation = "drop_oldest"
        self.configure(
            system=system,
            max_history=max_history,
            model=model,
            max_tokens=max_tokens,
            truncation=truncation,
        )
        self.turns: list[Turn] = []
        #: How the last request was fitted into the budget (None: no budget applied).
        self.last_fit: Fit | None = None

    def configure(self, **settings: Any) -> None:
        """Change settings (system, model, max_tokens, truncation, max_history), each checked
        before any is applied."""
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
        return f"Conversation({self.name!r}, {len(self.turns)} turns)"

    def __len__(self) -> int:
        return len(self.turns)

    def window(self, max_history: int | None = None) -> list[Turn]:
        """The turns sent with the next prompt: the last ``max_history`` (all when None)."""
        limit = self.max_history if max_history is None else max_history
        if limit is None:
            return list(self.turns)
        return self.turns[len(self.turns) - limit :] if limit else []

    def messages(
        self,
        prompt: Any,
        *,
        max_history: int | None = None,
        model: str | None = None,
        answer_tokens: int | None = None,
    ) -> list[Message]:
        """Exactly what the next request sends (the system message aside): the history that
        fits, then ``prompt`` as the new user turn. The history is the last ``max_history``
        turns, then whole turns are left out by :attr:`truncation` until it fits the budget:
        :attr:`max_tokens`, or else the context window of ``model`` (or the conversation's)
        less ``answer_tokens`` (default: up to 4,096 of the model's output). :attr:`last_fit`
        tells what was left out and whether the count was exact."""
        window = self.window(max_history)
        new = to_messages(prompt)
        model_id = model or self.model
        budget = self._budget(model_id, answer_tokens)
        self.last_fit = None
        if budget is not None:
            fixed = [Message("system", self.system)] if self.system else []
            self.last_fit = fit(
                [t.messages() for t in window],
                [*fixed, *new],
                budget,
                self.truncation,
                model=_bare_model(model_id),
            )
            window = [window[i] for i in self.last_fit.kept]
        out: list[Message] = []
        for turn in window:
            out.extend(turn.messages())
        out.extend(new)
        return out

    def _budget(self, model_id: str | None, answer_tokens: int | None) -> int | None:
        if self.max_tokens is not None:
            return self.max_tokens
        profile = _profile_of(model_id)
        if profile is None or profile.context_window is None:
            return None
        answer = (
            answer_tokens if answer_tokens is not None else min(profile.max_output or 4096, 4096)
        )
        return max(1, profile.context_window - answer)

    # --- branches and checkpoints --------------------------------------------------------

    def fork(self, name: str | None = None) -> Conversation:
        """A copy to go on differently: same settings and turns, its own future."""
        twin = Conversation.from_dict(self.to_dict())
        twin.name = name or f"{self.name}-fork"
        twin.model, twin.max_tokens, twin.truncation = self.model, self.max_tokens, self.truncation
        return twin

    def snapshot(self) -> dict[str, Any]:
        """The state to go back to with :meth:`restore` (a plain, JSON-safe dict)."""
        return json.loads(json.dumps(self.to_dict()))

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Go back to a :meth:`snapshot` (turns and system message; the name stays)."""
        back = Conversation.from_dict(snapshot)
        self.system, self.turns = back.system, back.turns

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the conversation as JSON (keys redacted); :meth:`load` reads it back."""
        return self.export(path, format="json")

    def add(self, prompt: Any, response: Response | str) -> Turn:
        """Record an exchange. ``prompt`` is what :func:`to_messages` accepts; its last user
        message is kept."""
        users = [m for m in to_messages(prompt) if m.role == "user"]
        user = users[-1] if users else Message("user", "")
        if isinstance(response, Response):
            turn = Turn(
                user,
                response.text,
                f"{response.provider}:{response.model}",
                response.usage,
                response.cost,
                response.finish_reason,
            )
        else:
            turn = Turn(user, str(response))
        self.turns.append(turn)
        return turn

    def chat(
        self, prompt: Any, *, model: str | None = None, client: Client | None = None, **options: Any
    ) -> Response:
        """Ask with this conversation's history and system prompt, then record the turn.
        ``model=`` switches model for this call (any provider; the history goes along)."""
        client, request = self._request(prompt, model, client, options)
        response = client.chat(request, **options)
        self.add(prompt, response)
        return response

    async def achat(
        self, prompt: Any, *, model: str | None = None, client: Client | None = None, **options: Any
    ) -> Response:
        """:meth:`chat` for async code (``await conv.achat("...")``)."""
        client, request = self._request(prompt, model, client, options)
        response = await client.achat(request, **options)
        self.add(prompt, response)
        return response

    def _request(
        self, prompt: Any, model: str | None, client: Client | None, options: dict[str, Any]
    ) -> tuple[Client, list[Message]]:
        if client is None:
            from .._client.registry import current_registry

            client = current_registry().client(model or self.model)
        if self.system is not None:
            options.setdefault("system", self.system)
        answer = options.get("max_tokens")
        return client, self.messages(prompt, model=client.model_id, answer_tokens=answer)

    @property
    def usage(self) -> ConversationUsage:
        """Calls, tokens and cost of this conversation's turns."""
        return ConversationUsage.of(self.turns)

    def reset(self) -> None:
        """Forget every turn (the name, system prompt and settings stay)."""
        self.turns.clear()

    # --- export --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "system": self.system,
            "model": self.model,
            "max_history": self.max_history,
            "max_tokens": self.max_tokens,
            "truncation": self.truncation,
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
    def from_dict(cls, data: dict[str, Any]) -> Conversation:
        conv = cls(
            data.get("name") or "default",
            system=data.get("system"),
            max_history=data.get("max_history"),
            model=data.get("model"),
            max_tokens=data.get("max_tokens"),
            truncation=data.get("truncation") or "drop_oldest",
        )
        for t in data.get("turns", []):
            user = (
                to_messages([t["user"]])[0]
                if isinstance(t["user"], dict) and "role" in t["user"]
                else Message("user", str(t["user"]))
            )
            usage = Usage(**t.get("usage", {}))
            conv.turns.append(
                Turn(
                    user,
                    t.get("assistant", ""),
                    t.get("model", ""),
                    usage,
                    t.get("cost"),
                    t.get("finish_reason"),
                    t.get("at", 0.0),
                )
            )
        return conv

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Conversation:
        """Read a conversation written by :meth:`save` or ``export(..., format="json")``
        (media parts, stored as hashes only, come back as text placeholders)."""
        return cls.from_dict(read_saved(path))


def _profile_of(model_id: str | None) -> Any:
    """The model profile behind a model id or alias (None when unknown or unresolvable)."""
    if not model_id:
        return None
    from .._client.pricing import profile_for
    from .._client.registry import current_registry

    try:
        ref = current_registry().resolve(model_id)
    except ConfigError:
        return None
    return profile_for(ref.provider, ref.model)


def _bare_model(model_id: str | None) -> str | None:
    """The model name for token counting (``openai:gpt-4o`` -> ``gpt-4o``)."""
    return model_id.partition(":")[2] or model_id if model_id else None
