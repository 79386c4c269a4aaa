"""What a conversation sends: the history that fits the budget, and the summary that stands
in for the turns it covers.

:class:`Recall` is the part of :class:`~llm_magics._chat.memory.Conversation` that builds a
request from the record: :meth:`Recall.messages` (pure: exactly what the next request sends)
and, for ``truncation="summarize"``, :meth:`Recall.fold_to_fit`, which asks the summary model
to fold the oldest half of the turns not yet summarised until the rest fits.

Thread safety: a conversation is meant for one thread.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._client.inputs import to_messages
from .._client.usage import message_tokens
from .._core.errors import ConfigError
from .._core.types import MediaPart, Message, TextPart
from .._runtime import loop
from .budget import Fit, Truncation, fit
from .summary import SUMMARY_TOKENS, Summary, summarize_turns
from .turns import Turn

if TYPE_CHECKING:
    from .._client.client import Client

__all__ = ["Recall"]

#: At most this many summary calls prepare one request (each folds half of what is left).
MAX_FOLDS = 6
#: The transcript budget of a summary call when the summary model's context is unknown.
DEFAULT_SUMMARY_INPUT = 6_000


class Recall:
    """Building requests from a conversation's record (a mixin of Conversation)."""

    name: str
    system: str | None
    model: str | None
    max_tokens: int | None
    max_history: int | None
    truncation: Truncation
    summary_model: str | None
    template: Any
    turns: list[Turn]
    summary: Summary
    last_fit: Fit | None
    _summary_failure_said: bool
    #: Per model id: how the provider's token count compares with the estimate.
    token_scales: dict[str, float]
    _fitted_for: str

    def calibrate(self, input_tokens: int) -> None:
        """Learn from the provider's count of the request :attr:`last_fit` described (its
        ``usage.input_tokens``) how far the estimates are off, for the next requests."""
        fitted = self.last_fit
        if fitted is None or fitted.exact or input_tokens <= 0 or fitted.estimated <= 0:
            return
        ratio = input_tokens / fitted.estimated
        self.token_scales[self._fitted_for] = min(max(ratio, 0.5), 4.0)

    def client_for(self, model: str | None, client: Client | None = None) -> Client:
        raise NotImplementedError

    def messages(
        self,
        prompt: Any = None,
        *,
        max_history: int | None = None,
        model: str | None = None,
        answer_tokens: int | None = None,
        system: str | None = None,
    ) -> list[Message]:
        """Exactly what the next request sends: the system message, the summary (with
        ``truncation="summarize"``), the history that fits, then ``prompt`` as the new user
        turn (None: the question waiting from ``add_user``).

        The history is the last ``max_history`` turns, then whole turns are left out by
        :attr:`truncation` until it fits the budget: :attr:`max_tokens`, or else the
        context window of ``model`` (or the conversation's) less ``answer_tokens``
        (default: up to 4,096 of the model's output). :attr:`last_fit` tells what was left
        out and whether the count was exact."""
        if self.template is not None and prompt is not None and not _is_shaped(prompt):
            prompt = [self._shaped(prompt, {})]
        window = self.window(max_history)
        if prompt is None and window and window[-1].pending:
            new = window.pop().messages()
        else:
            new = to_messages(prompt) if prompt is not None else []
        head = self._head(system)
        model_id = model or self.model
        budget = self._budget(model_id, answer_tokens)
        self.last_fit = None
        if budget is not None:
            self.last_fit = fit(
                [t.messages() for t in window],
                [*head, *new],
                budget,
                self.truncation,
                model=_bare_model(model_id),
                scale=self.token_scales.get(model_id or "", 1.0),
            )
            self._fitted_for = model_id or ""
            window = [window[i] for i in self.last_fit.kept]
        return [*head, *(m for turn in window for m in turn.messages()), *new]

    def _shaped(self, prompt: Any, options: dict[str, Any]) -> Message:
        """``prompt`` as the template's turn; options named after its variables fill them."""
        names = set(self.template.variables)
        values = {k: options.pop(k) for k in list(options) if k in names}
        if isinstance(prompt, str) or (
            isinstance(prompt, list)
            and all(isinstance(p, str | TextPart | MediaPart) for p in prompt)
        ):
            return self.template.render_turn(prompt, **values)
        raise ConfigError(
            f"conversation {self.name!r} shapes each turn with template "
            f"{self.template.name!r}: pass the turn as text (or text and media), not "
            f"{type(prompt).__name__}"
        )

    def window(self, max_history: int | None = None) -> list[Turn]:
        """The turns that may be sent with the next prompt: those the summary does not
        stand in for, then the last ``max_history`` of them (all when None)."""
        turns = self.turns[self._covered() :]
        limit = self.max_history if max_history is None else max_history
        if limit is None:
            return list(turns)
        return turns[len(turns) - limit :] if limit else []

    def _covered(self) -> int:
        return self.summary.covers if self.truncation == "summarize" and self.summary else 0

    def _head(self, system: str | None) -> list[Message]:
        head = [Message("system", system or self.system or "")]
        if self._covered():
            head.append(self.summary.message())
        return [m for m in head if m.text]

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

    # --- summaries -----------------------------------------------------------------------

    def summarize(self, model: str | None = None, *, client: Client | None = None) -> str:
        """Fold every turn not yet summarised into :attr:`summary` and return its text.
        ``model=`` (else :attr:`summary_model`, else the conversation's model) writes it,
        or ``client=``. With ``truncation="summarize"`` later requests send the summary in
        place of those turns; with other strategies it is there to read. Raises what the
        call raises."""
        return loop.run(self.asummarize(model, client=client))

    async def asummarize(self, model: str | None = None, *, client: Client | None = None) -> str:
        """:meth:`summarize` for async code."""
        todo = self._foldable()
        if todo:
            client = self.client_for(model or self.summary_model, client)
            for chunk in _chunks(todo, _summary_input(client)):
                self.summary = await summarize_turns(client, self.summary, chunk)
        return self.summary.text

    async def fold_to_fit(
        self,
        client: Client,
        prompt: Any,
        system: str | None,
        answer_tokens: int | None,
        max_history: int | None = None,
    ) -> list[Message]:
        """Summarise the oldest half of the turns not yet summarised, again while the rest
        does not fit (or is more than ``max_history`` turns); returns the request's messages
        (:meth:`messages`). A failed summary call is said once (a warning) and the request
        then leaves out turns as ``drop_oldest`` does."""
        limit = self.max_history if max_history is None else max_history

        def request() -> list[Message]:
            return self.messages(
                prompt,
                max_history=max_history,
                model=client.model_id,
                answer_tokens=answer_tokens,
                system=system,
            )

        for _ in range(MAX_FOLDS):
            todo = self._foldable()
            if not todo:
                break
            over_count = limit is not None and len(self.turns) - self.summary.covers > limit
            if not over_count:
                sent = request()
                if self.last_fit is None or not self.last_fit.dropped:
                    return sent
            if not await self._fold(client, todo[: (len(todo) + 1) // 2]):
                break
        return request()

    def _foldable(self) -> list[Turn]:
        """The turns a summary may take next: after those it covers, up to a waiting
        question (which is the prompt, not history)."""
        turns = self.turns[self.summary.covers :]
        return turns[:-1] if turns and turns[-1].pending else turns

    async def _fold(self, client: Client, turns: Sequence[Turn]) -> bool:
        try:
            writer = self.client_for(self.summary_model, None if self.summary_model else client)
            self.summary = await summarize_turns(writer, self.summary, turns)
        except Exception as exc:  # a summary failing must never end the conversation
            if not self._summary_failure_said:
                self._summary_failure_said = True
                warnings.warn(
                    f"conversation {self.name!r}: the summary could not be written ({exc}). "
                    "Requests leave out the oldest turns instead until a later summary "
                    "succeeds; set summary_model= to another model if this one keeps failing.",
                    UserWarning,
                    stacklevel=4,
                )
            return False
        self._summary_failure_said = False
        return True


def _is_shaped(prompt: Any) -> bool:
    """A prompt that is already the template's turn (a list holding its Message)."""
    return isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], Message)


def _summary_input(client: Client) -> int:
    """How many tokens of transcript one summary call may carry."""
    profile = _profile_of(client.model_id)
    window = profile.context_window if profile is not None else None
    if not window:
        return DEFAULT_SUMMARY_INPUT
    return max(500, window - SUMMARY_TOKENS - 1_000)


def _chunks(turns: Sequence[Turn], limit: int) -> list[list[Turn]]:
    """``turns`` in runs that each fit ``limit`` tokens (a turn over it goes alone)."""
    chunks: list[list[Turn]] = [[]]
    used = 0
    for turn in turns:
        cost = sum(message_tokens(m) for m in turn.messages())
        if chunks[-1] and used + cost > limit:
            chunks.append([])
            used = 0
        chunks[-1].append(turn)
        used += cost
    return [c for c in chunks if c]


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
