"""Answering one prompt of a batch run (:class:`PromptAnswerer`): its request prepared by the
:class:`~llm_magics._batch.lookahead.Lookahead` (cache already asked) or sent with
``Client.achat`` (with the client's retries), the answer converted or recovered, and the
outcome recorded in the run's :class:`~llm_magics._batch.outcomes.Outcomes`.

Thread safety: a PromptAnswerer belongs to one run; its workers share it on that run's event
loop only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from .._client.client import Client
from .._client.pipeline import CacheMode
from .._core.errors import (
    AuthenticationError,
    ConfigError,
    EmptyPromptError,
    LLMError,
    OutputParseError,
)
from .._core.types import ChatRequest, Response
from .._runtime.retry import is_retryable
from .lookahead import Lookahead, request_options
from .outcomes import Outcomes

__all__ = ["PromptAnswerer", "is_fatal"]


def is_fatal(exc: BaseException) -> bool:
    """Errors that every other row would meet too: stop instead of repeating them."""
    if isinstance(exc, EmptyPromptError):
        return False  # this row's input is empty; the next row's may not be
    return isinstance(exc, ConfigError | AuthenticationError)


class PromptAnswerer:
    """Answers prompt ``i`` of ``prompts`` and records the outcome. ``materialize``,
    ``convert`` and ``recover`` are those of :func:`~llm_magics._batch.fanout.run_batch`."""

    __slots__ = (
        "_cache",
        "_client",
        "_convert",
        "_lookahead",
        "_materialize",
        "_options",
        "_outcomes",
        "_prompts",
        "_recover",
    )

    def __init__(
        self,
        client: Client,
        prompts: Sequence[Any],
        outcomes: Outcomes,
        *,
        materialize: Callable[[Any], Any] | None,
        convert: Callable[[Response], Any],
        recover: Callable[[Response], Any] | None,
        cache: CacheMode,
        options: dict[str, Any],
    ) -> None:
        self._client = client
        self._prompts = prompts
        self._outcomes = outcomes
        self._materialize = materialize
        self._convert = convert
        self._recover = recover
        self._cache = cache
        self._options = options
        self._lookahead = Lookahead(client, prompts, cache, options)

    async def answer(self, i: int, sweep: bool) -> None:
        """Send prompt ``i`` (or take its cached answer) and record the outcome. ``sweep``:
        the final retry of a failed prompt, sent afresh."""
        outcomes = self._outcomes
        prepared = None if sweep else self._lookahead.take(i)
        prompt = self._prompts[i]
        if prepared is None:
            materialize = self._materialize
            try:
                prompt = materialize(prompt) if materialize is not None else prompt
            except (LLMError, ValueError, OSError) as exc:
                # A row-specific input problem (a missing image file, an unreadable value).
                outcomes.fail(i, exc, sweep)
                return
        try:
            if prepared is not None:
                started = time.perf_counter()
                response = await self._client.pipeline.answer(
                    prepared, self._options.get("timeout"), started
                )
            else:
                response = await self._client.achat(prompt, cache=self._cache, **self._options)
        except OutputParseError as exc:
            self._recovered(i, prompt, exc, sweep)
            return
        except LLMError as exc:
            if is_fatal(exc):
                raise
            outcomes.fail(i, exc, sweep, is_retryable(exc))
            return
        self.accept(i, response, sweep)

    def accept(self, i: int, response: Response, sweep: bool = False) -> None:
        """Prompt ``i`` has its answer (finished already): count it, convert it, record it."""
        outcomes = self._outcomes
        outcomes.account(response)
        try:
            value = self._convert(response)
        except ValueError as exc:
            outcomes.fail(i, exc, sweep)
            return
        outcomes.succeed(i, value, sweep)

    def take(
        self, i: int, prompt: Any, request: ChatRequest, response: Response, key: str | None
    ) -> None:
        """Prompt ``i``'s fresh answer arrived by another way than ``achat`` (a provider
        batch job): finish it as the pipeline finishes every answer (schema, accounting),
        cache it under ``key`` (the key an online call has) and record it."""
        pipeline = self._client.pipeline
        try:
            pipeline.finish(response, request, time.perf_counter())
        except OutputParseError as exc:
            self._recovered(i, prompt, exc, False, key)
            return
        pipeline.put(key, response)
        self.accept(i, response)

    def _recovered(
        self, i: int, prompt: Any, exc: OutputParseError, sweep: bool, key: str | None = None
    ) -> None:
        """An answer that did not parse: use ``recover`` on it when there is one, else fail."""
        outcomes = self._outcomes
        answer = exc.response
        if self._recover is None or answer is None:
            outcomes.fail(i, exc, sweep)
            return
        outcomes.account(answer)
        try:
            value = self._recover(answer)
        except ValueError as inner:
            outcomes.fail(i, inner, sweep)
            return
        self._remember(prompt, answer, key)
        outcomes.succeed(i, value, sweep)

    def _remember(self, prompt: Any, answer: Response, key: str | None = None) -> None:
        """Cache an answer the client refused to cache because it did not parse, when the
        caller could use it anyway (a label found in prose): a rerun then sends nothing
        either."""
        client, cache = self._client, self._cache
        if client.cache is None or cache is False or answer.cached:
            return
        try:
            if key is None:
                request = client.build_request(prompt, **request_options(self._options))
                key = client.pipeline.cache_key(request, cache)
            client.pipeline.put(key, answer)
        except Exception:  # caching is an optimisation; the value is already in hand
            return
