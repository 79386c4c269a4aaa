"""What one batch run has produced so far (:class:`Outcomes`): each unique prompt's value or
error text, the prompts worth a second try, the tokens and cost counted into the run's
:class:`~llm_magics._batch.stats.BatchStats`, and the rules for giving up early
(``errors="raise"``, ``FAIL_FAST``). :class:`BatchResult` is what the run hands back.

Thread safety: an Outcomes belongs to one run and is written from that run's event loop only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._client.pricing import cache_saving_of, cost_of
from .._core.errors import BudgetExceededError, LLMError
from .._core.types import Response
from .stats import BatchStats

__all__ = ["FAIL_FAST", "BatchResult", "ErrorMode", "Outcomes", "account", "error_text"]

#: Give up when this many prompts failed before any succeeded.
FAIL_FAST = 8

ErrorMode = Literal["column", "raise"]


@dataclass
class BatchResult:
    """Per unique prompt: the converted value (None when it failed) and the error text."""

    values: list[Any]
    errors: list[str | None]
    stats: BatchStats


def error_text(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or repr(exc)
    return f"{type(exc).__name__}: {message}"


def account(stats: BatchStats, response: Response) -> None:
    """Count an answer's tokens and cost (or its cache hit) into ``stats``."""
    if response.cached:
        stats.cache_hits += 1
        stats.saved += response.cost or 0.0
        return
    stats.requests += 1
    usage = response.usage
    stats.input_tokens += usage.input_tokens
    stats.output_tokens += usage.output_tokens
    cost = response.cost
    if cost is None:
        cost = cost_of(response)
    if cost is None:
        stats.unpriced += 1
    else:
        stats.cost += cost
    if usage.cached_input_tokens or usage.cache_write_tokens:
        stats.cached_input_tokens += usage.cached_input_tokens
        stats.prompt_cache_saved += cache_saving_of(response) or 0.0


class Outcomes:
    """Per unique prompt (``count`` of them): the value or error text, with the row counts of
    ``stats`` kept in step. ``weights[i]`` is how many rows share prompt ``i``. A ``sweep``
    outcome is that of the final retry of a prompt whose rows were already counted as done
    and failed."""

    __slots__ = (
        "_count",
        "_errors",
        "_first_error",
        "_stats",
        "_weights",
        "failed",
        "failures",
        "retry_later",
        "successes",
        "values",
    )

    def __init__(
        self, count: int, weights: Sequence[int], stats: BatchStats, errors: ErrorMode
    ) -> None:
        self._count = count
        self._weights = weights
        self._stats = stats
        self._errors = errors
        self.values: list[Any] = [None] * count
        self.failures: list[str | None] = [None] * count
        self.retry_later: list[int] = []
        self.successes = 0
        self.failed = 0
        self._first_error: BaseException | None = None

    def account(self, response: Response) -> None:
        """Count an answer's tokens and cost (or its cache hit) into the stats."""
        account(self._stats, response)

    def fail(self, i: int, exc: BaseException, sweep: bool, retryable: bool = False) -> None:
        """Prompt ``i`` failed with ``exc``: keep its error text, or raise when the run should
        stop (``errors="raise"``, or the first ``FAIL_FAST`` prompts all failed)."""
        if self._errors == "raise":
            raise exc
        refused = isinstance(exc, BudgetExceededError)  # not sent on purpose: the run goes on
        self.failed += 0 if refused else 1
        if self._first_error is None and not refused:
            self._first_error = exc
        self.failures[i] = error_text(exc)
        if not sweep:
            weight = self._weights[i]
            self._stats.done += weight
            self._stats.errors += weight
            if retryable:
                self.retry_later.append(i)
        if refused or self.successes:
            return
        if self.failed >= FAIL_FAST and self._count > FAIL_FAST:
            raise self._first_error if self._first_error is not None else exc

    def fail_text(self, i: int, text: str) -> None:
        """Prompt ``i`` failed elsewhere (a Ray worker), which already retried it; ``text``
        is its error text. With ``errors="raise"`` the run stops with it."""
        if self._errors == "raise":
            raise LLMError(text)
        self.failed += 1
        self.failures[i] = text
        self._stats.done += self._weights[i]
        self._stats.errors += self._weights[i]

    def succeed(self, i: int, value: Any, sweep: bool) -> None:
        self.successes += 1
        self.values[i] = value
        if sweep:
            self.failures[i] = None
            self._stats.errors -= self._weights[i]
        else:
            self._stats.done += self._weights[i]

    @property
    def stats(self) -> BatchStats:
        return self._stats

    def result(self) -> BatchResult:
        return BatchResult(self.values, self.failures, self._stats)
