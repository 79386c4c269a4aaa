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

from typing import TYPE_CHECKING, Any

from .._client.inputs import to_messages
from .._core.errors import ConfigError
from .._core.templating import is_prompt_template
from .._core.types import Message, Response
from .._runtime import loop
from .budget import Fit, Truncation, check_strategy
from .export import (
    redact_secrets,
)
from .persist import ExportFormat, Persisted
from .recall import Recall
from .summary import Summary
from .turns import ConversationUsage, SummaryCall, Turn

if TYPE_CHECKING:
    from .._client.client import Client
    from .streaming import ConversationStream

__all__ = [
    "Conversation",
    "ConversationUsage",
    "ExportFormat",
    "SummaryCall",
    "Turn",
    "redact_secrets",
]

SETTINGS = (
    "system",
    "model",
    "template",
    "max_tokens",
    "truncation",
    "max_history",
    "summary_model",
)


class Conversation(Recall, Persisted):
    """A named history of turns; :meth:`messages` builds the next request from it."""

    def __init__(
        self,
        name: str = "default",
        *,
        model: str | None = None,
        system: str | None = None,
        template: Any = None,
        max_tokens: int | None = None,
        truncation: str = "drop_oldest",
        summary_model: str | None = None,
        max_history: int | None = None,
    ) -> None:
        self.name = name
        self.system: str | None = None
        self.model: str | None = None
        #: A prompt template (``lm.Template``): its system is the conversation's unless one
        #: is given, and its ``user`` shapes each turn (the text fills its main variable).
        self.template: Any = None
        #: The history's token budget (None: the model's context window less the answer's).
        self.max_tokens: int | None = None
        self.truncation: Truncation = "drop_oldest"
        #: The model that writes summaries (None: the model of the call that needs one).
        self.summary_model: str | None = None
        self.max_history: int | None = None
        self.configure(
            system=system,
            model=model,
            template=template,
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
        self.token_scales: dict[str, float] = {}
        self._fitted_for = ""
        self._summary_failure_said = False
        self._asked: tuple[Any, Message] | None = None  # (prompt, the user message sent)

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
        template = settings.get("template")
        if isinstance(template, str):
            from .templates.library import templates

            template = settings["template"] = templates[template]
        if template is not None:
            if not is_prompt_template(template):
                raise ConfigError(
                    f"template= takes an lm.Template or the name of one in lm.templates; "
                    f"got {type(template).__name__}"
                )
            system = settings.get("system", self.system)
            if system is None:  # the template's system, unless one is given
                settings["system"] = template.render_system() or None
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

    def add(
        self, prompt: Any, response: Response | str, *, steps: list[Message] | None = None
    ) -> Turn:
        """Record an exchange. ``prompt`` is what :func:`to_messages` accepts, or None for
        the waiting question of :meth:`add_user`; ``steps`` are the tool calls and results
        that led to the answer (kept with it, never split from it)."""
        if prompt is None and self.turns and self.turns[-1].pending:
            turn = self.turns.pop()
            user = turn.user
        elif self._asked is not None and self._asked[0] is prompt:
            user = self._asked[1]  # what was sent: the template's turn
        else:
            user = _user_message(prompt)
        self._asked = None
        if isinstance(response, Response):
            turn = Turn.answered(user, response, steps)
            if not steps:  # a tool loop's usage sums several requests
                self.calibrate(response.usage.input_tokens)
        else:
            turn = Turn(user, str(response), steps=list(steps or []))
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
        self._asked = None
        if self.template is not None and prompt is not None:
            shaped = self._shaped(prompt, options)
            self._asked = (prompt, shaped)
            prompt = [shaped]
        if self.truncation == "summarize":
            return await self.fold_to_fit(client, prompt, system, answer, max_history)
        return self.messages(
            prompt,
            max_history=max_history,
            model=client.model_id,
            answer_tokens=answer,
            system=system,
        )

    @property
    def usage(self) -> ConversationUsage:
        """Calls, tokens and cost of this conversation's turns and of its summaries."""
        return ConversationUsage.of(self.turns, self.summary.calls)

    def reset(self) -> None:
        """Forget every turn and the summary (the name, system prompt and settings stay)."""
        self.turns.clear()
        self.summary = Summary()


def _user_message(prompt: Any) -> Message:
    """The user message to record for ``prompt`` (its last user message)."""
    users = [m for m in to_messages(prompt) if m.role == "user"]
    return users[-1] if users else Message("user", "")
