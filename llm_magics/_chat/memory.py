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
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .._client.inputs import to_messages
from .._core.errors import ConfigError
from .._core.secrets import scrub
from .._core.types import MediaPart, Message, Response, TextPart, Usage
from .budget import Fit, check_strategy, fit

if TYPE_CHECKING:
    from .._client.client import Client

__all__ = ["Conversation", "Turn", "redact_secrets"]

ExportFormat = Literal["md", "markdown", "json"]


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
        if max_history is not None and max_history < 0:
            raise ConfigError(f"max_history must be >= 0 or None; got {max_history}")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise ConfigError(f"max_tokens must be a positive number of tokens; got {max_tokens!r}")
        self.name = name
        self.system = system
        self.max_history = max_history
        self.model = model
        #: The history's token budget (None: the model's context window less the answer's).
        self.max_tokens = max_tokens
        self.truncation = check_strategy(truncation)
        self.turns: list[Turn] = []
        #: How the last request was fitted into the budget (None: no budget applied).
        self.last_fit: Fit | None = None

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
        """Ask with this conversation's history and system prompt, then record the turn."""
        if client is None:
            from .._client.registry import current_registry

            client = current_registry().client(model or self.model)
        if self.system is not None:
            options.setdefault("system", self.system)
        answer = options.get("max_tokens")
        response = client.chat(
            self.messages(prompt, model=client.model_id, answer_tokens=answer), **options
        )
        self.add(prompt, response)
        return response

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
        lines = [f"# Conversation `{self.name}`", ""]
        if self.system:
            lines += [f"*System:* {self.system}", ""]
        if not self.turns:
            lines += ["*(no turns yet)*", ""]
        for i, turn in enumerate(self.turns, 1):
            lines += [f"## {i}. You", "", _message_markdown(turn.user), ""]
            tokens = f", {turn.usage.input_tokens} → {turn.usage.output_tokens} tokens"
            lines += [f"**{turn.model or 'assistant'}**{tokens if turn.usage.total_tokens else ''}"]
            lines += ["", turn.answer, ""]
        return redact_secrets("\n".join(lines).rstrip() + "\n")

    def export(
        self, path: str | os.PathLike[str] | None = None, *, format: ExportFormat | None = None
    ) -> str:
        """The conversation as Markdown or JSON; written to ``path`` too when given (the format
        then defaults from its suffix)."""
        fmt = format or ("json" if path is not None and str(path).endswith(".json") else "md")
        if fmt not in ("md", "markdown", "json"):
            raise ConfigError(f"export format must be md or json; got {fmt!r}")
        text = self.to_json() if fmt == "json" else self.to_markdown()
        if path is not None:
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
        """Read a conversation written by ``export(..., format="json")`` (media parts, stored as
        hashes only, come back as text placeholders)."""
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
        for t in data.get("turns", []):
            content = t.get("user", {}).get("content")
            if isinstance(content, list):
                t["user"]["content"] = [
                    c
                    if c.get("type") == "text"
                    else {"type": "text", "text": _media_placeholder_dict(c)}
                    for c in content
                ]
        return cls.from_dict(data)


def _message_markdown(message: Message) -> str:
    out = []
    for part in message.parts:
        if isinstance(part, TextPart):
            out.append(part.text)
        elif isinstance(part, MediaPart):
            out.append(f"*[{part.kind}: {part.mime_type}, sha256 {part.content_hash[:12]}]*")
    return "\n\n".join(out)


def _media_placeholder_dict(part: dict[str, Any]) -> str:
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
