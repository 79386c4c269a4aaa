"""Usage and cost of this kernel, and token counting for estimates.

Every finished Response passes :func:`record_response` (the first of the session's
:class:`ResponseHooks`). It fills ``response.cost`` from the model's profile
when the provider did not, and adds the response to the kernel's totals, by session, by
``provider:model`` and by provider.

Cached answers: a response served from the response cache counts as a call and a cache hit,
but adds no tokens and no cost to the totals, because it cost nothing now. Its ``cost``
attribute still shows what it cost when it was first computed, and the totals show that sum
as ``saved``. The provider's own prompt cache is the other saving: input tokens it served
from its cache (``cached_input_tokens``) or wrote to it (``cache_write_tokens``) are billed at
the cached and cache-write prices, and ``cache_saved`` sums what that saved against the plain
input price (a write priced above it counts against). A fresh call whose price is unknown adds its tokens but no cost; the totals
count it under ``unpriced`` so a total is never presented as complete when it is not.

``lm.usage()`` returns a snapshot (:class:`UsageReport`) that renders as a table in a
notebook; ``lm.reset_usage()`` starts the totals over.

Token counting (:func:`count_tokens`) uses tiktoken for OpenAI models when it is installed and
its encoding is available offline; otherwise an approximation: one token per 4 ASCII
characters plus one per non-ASCII character (CJK and emoji run about one token per
character or more), which errs on the high side for estimates.

Thread safety: recording, snapshots and resets may happen from any thread.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .._core.fmt import markdown_table, money, text_table
from .._core.session import SESSION
from .._core.types import ChatRequest, MediaPart, Message, Response, TextPart
from .pricing import cache_saving_of, cost_of

__all__ = [
    "ResponseHooks",
    "UsageReport",
    "UsageRow",
    "UsageTotals",
    "count_tokens",
    "counts_exactly",
    "estimate_request_tokens",
    "message_tokens",
    "record_response",
    "reset_usage",
    "usage",
]

log = logging.getLogger("llm_magics._client.usage")

# Tokens an image or audio clip is assumed to take in an estimate (providers bill an image
# at roughly 85-1,600 tokens depending on size and detail).
MEDIA_TOKENS = 1_000
MESSAGE_OVERHEAD = 4  # role and separators per message


@dataclass
class UsageRow:
    """Totals of one group of calls. ``cost`` counts fresh calls with a known price only."""

    calls: int = 0
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0
    saved: float = 0.0
    cache_write_tokens: int = 0
    cache_saved: float = 0.0

    def add(self, response: Response, cache_saved: float | None = None) -> None:
        """Count ``response``; ``cache_saved``: what the provider's prompt cache saved on it
        (:func:`~llm_magics._client.pricing.cache_saving_of`)."""
        self.calls += 1
        if response.cached:
            self.cache_hits += 1
            self.saved += response.cost or 0.0
            return
        self.input_tokens += response.usage.input_tokens
        self.output_tokens += response.usage.output_tokens
        self.cached_input_tokens += response.usage.cached_input_tokens
        self.cache_write_tokens += response.usage.cache_write_tokens
        self.cache_saved += cache_saved or 0.0
        if response.cost is None:
            self.unpriced += 1
        else:
            self.cost += response.cost

    def cost_text(self) -> str:
        text = money(self.cost)
        if self.unpriced:
            text += f" + {self.unpriced} call{'s' if self.unpriced > 1 else ''} of unknown price"
        return text


@dataclass
class UsageReport:
    """A snapshot of this kernel's usage: ``session`` totals, ``by_model`` (``provider:model``
    as the provider reported the model) and ``by_provider``."""

    session: UsageRow
    by_model: dict[str, UsageRow] = field(default_factory=dict)
    by_provider: dict[str, UsageRow] = field(default_factory=dict)
    since: float = 0.0

    @property
    def cost(self) -> float:
        return self.session.cost

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": asdict(self.session),
            "by_model": {k: asdict(v) for k, v in self.by_model.items()},
            "by_provider": {k: asdict(v) for k, v in self.by_provider.items()},
            "since": self.since,
        }

    def _rows(self) -> list[list[str]]:
        rows = [
            [
                "model", "calls", "cache hits", "input tok", "cached tok", "output tok", "cost",
                "saved: response cache", "saved: prompt cache",
            ]
        ]  # fmt: skip
        for name, row in [*sorted(self.by_model.items()), ("**session**", self.session)]:
            rows.append(
                [
                    name,
                    str(row.calls),
                    str(row.cache_hits),
                    f"{row.input_tokens:,}",
                    f"{row.cached_input_tokens:,}",
                    f"{row.output_tokens:,}",
                    row.cost_text(),
                    money(row.saved),
                    money(row.cache_saved),
                ]
            )
        return rows

    def _repr_markdown_(self) -> str:
        if not self.session.calls:
            return "No LLM calls in this session yet."
        rows = self._rows()
        return markdown_table(rows[0], rows[1:])

    def __str__(self) -> str:
        if not self.session.calls:
            return "No LLM calls in this session yet."
        rows = [[c.replace("**", "") for c in r] for r in self._rows()]
        return text_table(rows[0], rows[1:], numbers=True)


class UsageTotals:
    """The usage totals of one kernel session (a part of the session)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.session = UsageRow()
        self.by_model: dict[str, UsageRow] = {}
        self.by_provider: dict[str, UsageRow] = {}
        self.since = time.time()

    def add(self, response: Response) -> None:
        model_id = f"{response.provider}:{response.model}"
        saved = None if response.cached else cache_saving_of(response)
        with self.lock:
            self.session.add(response, saved)
            self.by_model.setdefault(model_id, UsageRow()).add(response, saved)
            self.by_provider.setdefault(response.provider, UsageRow()).add(response, saved)

    def snapshot(self) -> UsageReport:
        with self.lock:
            return UsageReport(
                UsageRow(**asdict(self.session)),
                {k: UsageRow(**asdict(v)) for k, v in self.by_model.items()},
                {k: UsageRow(**asdict(v)) for k, v in self.by_provider.items()},
                self.since,
            )


def record_response(response: Response) -> None:
    """The accounting hook: fill in the cost, then add to the session's totals."""
    if response.cost is None:
        response.cost = cost_of(response)
    SESSION.get(UsageTotals).add(response)


class ResponseHooks:
    """What runs on every finished Response, fresh or cached (a part of the session):
    accounting first, then any hook added with :meth:`add`. A hook that raises is logged,
    never raised: accounting must not fail a call whose answer has arrived."""

    def __init__(self) -> None:
        self.hooks: list[Callable[[Response], None]] = [record_response]

    def add(self, hook: Callable[[Response], None]) -> None:
        self.hooks.append(hook)

    def run(self, response: Response) -> None:
        for hook in self.hooks:
            try:
                hook(response)
            except Exception:
                log.exception(
                    "llm_magics could not account for a response of %s", response.provider
                )


def usage() -> UsageReport:
    """``lm.usage()``: calls, cache hits, tokens and USD of this kernel, by model and provider."""
    return SESSION.get(UsageTotals).snapshot()


def reset_usage() -> None:
    """``lm.reset_usage()``: start the totals over."""
    totals = SESSION.get(UsageTotals)
    with totals.lock:
        totals.reset()


# --- token counting ----------------------------------------------------------------------

_OPENAI_PREFIXES = ("gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-", "davinci", "babbage")
_encodings: dict[str, Any] = {}
_encodings_lock = threading.Lock()


def _encoding(model: str) -> Any:
    """The tiktoken encoding of an OpenAI model, or None (not installed, unknown offline)."""
    name = model.partition(":")[2] if model.startswith("openai:") else model
    if not name.startswith(_OPENAI_PREFIXES):
        return None
    with _encodings_lock:
        if name in _encodings:
            return _encodings[name]
        encoding = None
        try:
            import tiktoken

            try:
                encoding = tiktoken.encoding_for_model(name)
            except KeyError:
                encoding = tiktoken.get_encoding("o200k_base")
        except Exception:
            # Not installed, or its encoding file cannot be fetched (no network): approximate.
            encoding = None
        _encodings[name] = encoding
        return encoding


def approximate_tokens(text: str) -> int:
    """One token per 4 ASCII characters plus one per other character, rounded up."""
    if not text:
        return 0
    ascii_chars = len(text.encode("ascii", "ignore"))
    return math.ceil(ascii_chars / 4) + (len(text) - ascii_chars)


def count_tokens(text: str, model: str | None = None) -> int:
    """Tokens of ``text`` for ``model``: exact with tiktoken for OpenAI models when it is
    installed and its encoding is available, else :func:`approximate_tokens`."""
    if model:
        encoding = _encoding(model)
        if encoding is not None:
            return len(encoding.encode(text, disallowed_special=()))
    return approximate_tokens(text)


def counts_exactly(model: str | None) -> bool:
    """Whether :func:`count_tokens` is exact for ``model`` (tiktoken has its encoding) rather
    than an estimate."""
    return bool(model) and _encoding(model or "") is not None


def message_tokens(message: Message, model: str | None = None) -> int:
    """Tokens ``message`` takes in a request: its text, a fixed cost per image or audio, and
    the per-message framing."""
    total = MESSAGE_OVERHEAD
    for part in _parts(message.content):
        if isinstance(part, TextPart):
            total += count_tokens(part.text, model)
        elif isinstance(part, MediaPart):
            total += MEDIA_TOKENS
    return total


def estimate_request_tokens(request: ChatRequest, *, exact: bool = False) -> int:
    """Prompt tokens of ``request`` plus its ``max_tokens`` (the most it may answer).

    The fast approximation is used unless ``exact``: this runs before every request that
    goes through a key pool with a TPM limit.
    """
    model = request.model if exact else None
    prompt = count_tokens(request.system or "", model)
    prompt += sum(message_tokens(message, model) for message in request.messages)
    return prompt + (request.max_tokens or 0)


def _parts(content: str | Iterable[Any]) -> Iterable[Any]:
    return [TextPart(content)] if isinstance(content, str) else content
