"""A model's profile: context window, maximum output, rate limits, prices, and the cost of a usage.

Prices are US dollars per million tokens, as the vendors publish them (standard tier, no batch
discount); None means unknown, and an unknown price needed for a cost makes the cost None
("unknown"), never a guess presented as fact. How a cost is computed from
:class:`~llm_magics._core.types.Usage` (whose ``input_tokens`` counts every prompt token,
including the ones served from or written to a prompt cache)::

    (input - cached - cache_write) * input_price
      + cached * cached_input_price          # unknown cached price -> cost None
      + cache_write * cache_write_price      # default: the input price
      + output * output_price

Models with a long-context tier (Gemini 2.5 Pro, Claude Sonnet 4.x) use ``long_*`` prices when
the prompt is longer than ``long_context_threshold``. In a provider Batch API job every price is
multiplied by ``batch`` (0.5 where the vendor halves them; None: no batch price known), the
cached and cache-write prices included, as the vendors bill it. What the provider's prompt
cache saved on a usage (:meth:`ModelProfile.cache_saving`) is the cost of the same tokens at
the plain input price less the cost charged; a cache write priced above the input price makes
it negative. Audio input tokens are priced at
``audio_input`` when the caller knows how many there were. A usage of zero tokens has an unknown
cost (the vendor reported none), unless the model is free.

Thread safety: profiles are frozen values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..._core.types import Usage

__all__ = ["ModelProfile", "model"]

_M = 1_000_000


@dataclass(frozen=True)
class ModelProfile:
    """What is known about one model. Prices in USD per 1M tokens; None means unknown."""

    provider: str
    model: str
    context_window: int | None = None
    max_output: int | None = None
    input: float | None = None
    output: float | None = None
    cached_input: float | None = None
    cache_write: float | None = None
    long_context_threshold: int | None = None
    long_input: float | None = None
    long_output: float | None = None
    long_cached_input: float | None = None
    audio_input: float | None = None
    rpm: int | None = None
    rpd: int | None = None
    tpm: int | None = None
    #: Fraction of every price paid in a provider Batch API job (None: no batch price).
    batch: float | None = None
    #: The shortest prompt prefix (tokens) the vendor's prompt cache stores.
    cache_min_tokens: int | None = None
    source: str = "built-in"

    @property
    def model_id(self) -> str:
        return f"{self.provider}:{self.model}"

    @property
    def priced(self) -> bool:
        return self.input is not None and self.output is not None

    @property
    def free(self) -> bool:
        return (
            self.input == 0 and self.output == 0 and not self.cached_input and not self.cache_write
        )

    def cost(self, usage: Usage, *, audio_tokens: int = 0, batch: bool = False) -> float | None:
        """USD for ``usage``, or None when a price it needs is unknown. ``batch``: the price
        in a provider Batch API job (None when the model has none)."""
        online = self._online_cost(usage, audio_tokens)
        if not batch or online is None or online == 0.0:
            return online
        return None if self.batch is None else online * self.batch

    def cache_saving(self, usage: Usage, *, batch: bool = False) -> float | None:
        """USD the provider's prompt cache saved on ``usage``: its cost with every cached or
        cache-written token at the plain input price, less its real cost (negative when
        writes cost more than they saved). 0.0 when no token touched the cache; None when a
        price is unknown."""
        if not usage.cached_input_tokens and not usage.cache_write_tokens:
            return 0.0
        charged = self.cost(usage, batch=batch)
        plain = self.cost(Usage(usage.input_tokens, usage.output_tokens), batch=batch)
        if charged is None or plain is None:
            return None
        return plain - charged

    def _online_cost(self, usage: Usage, audio_tokens: int) -> float | None:
        if self.input is None or self.output is None:
            return None
        if self.free:
            return 0.0
        if usage.input_tokens == 0 and usage.output_tokens == 0:
            return None  # the provider reported no usage: we cannot know
        price_in, price_out, price_cached = self.input, self.output, self.cached_input
        price_write: float | None = self.cache_write if self.cache_write is not None else price_in
        threshold = self.long_context_threshold
        if threshold is not None and usage.input_tokens > threshold:
            if self.long_input is None or self.long_output is None:
                return None
            price_in, price_out = self.long_input, self.long_output
            price_cached = self.long_cached_input
            # Vendors with a priced cache write do not publish a long-context one here.
            price_write = price_in if self.cache_write is None else None
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        written = min(usage.cache_write_tokens, usage.input_tokens - cached)
        audio = min(audio_tokens, usage.input_tokens - cached - written)
        plain = usage.input_tokens - cached - written - audio
        total = plain * price_in + usage.output_tokens * price_out
        for tokens, price in ((cached, price_cached), (written, price_write)):
            if tokens:
                if price is None:
                    return None
                total += tokens * price
        if audio:
            total += audio * (self.audio_input if self.audio_input is not None else price_in)
        return total / _M


def model(
    name: str,
    context_window: int | None,
    max_output: int | None,
    price_in: float,
    price_out: float,
    cached: float | None = None,
    **more: Any,
) -> ModelProfile:
    """One row of a vendor's price list; the vendor's entry fills in ``provider``."""
    return ModelProfile("", name, context_window, max_output, price_in, price_out, cached, **more)
