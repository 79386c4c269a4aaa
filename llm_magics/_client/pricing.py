"""Model profiles: context window, maximum output, prices, and the cost of a response.

Prices are US dollars per million tokens, as the providers publish them (standard tier, no
batch discount). A profile ships here only for a price we are sure of; a model without one
gets ``cost = None`` ("unknown"), never a guess presented as fact. Users fill the gaps or
correct a price with :func:`set_price` / :func:`register_model_profile`, which win over the
built-ins. Local models (``local``, ``ollama``) cost 0.

How a cost is computed from :class:`~llm_magics._core.types.Usage` (whose ``input_tokens`` counts
every prompt token, including the ones served from or written to a prompt cache)::

    (input - cached - cache_write) * input_price
      + cached * cached_input_price          # unknown cached price -> cost None
      + cache_write * cache_write_price      # default: the input price
      + output * output_price

Models with a long-context tier (Gemini 2.5 Pro, Claude Sonnet 4.x) use ``long_*`` prices when the prompt is
longer than ``long_context_threshold``. For Gemini, audio input tokens are priced at
``audio_input`` when the response reports its modality breakdown. A response that reports no
usage at all has an unknown cost (unless the model is free).

Lookup of ``provider:model``: user profiles, then built-ins, exact first, then without a date
suffix (``gpt-4o-mini-2024-07-18`` -> ``gpt-4o-mini``, ``claude-sonnet-4-5-20250929`` ->
``claude-sonnet-4-5``) or ``-latest``, then the provider-wide profile (``ollama:*``).

Thread safety: lookups and registrations may happen from any thread.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
from dataclasses import dataclass, fields, replace
from typing import Any

from .._core.errors import ConfigError
from .._core.session import SESSION
from .._core.types import Response, Usage
from ..providers.catalog import undated

__all__ = [
    "ModelProfile",
    "cost_of",
    "model_profile",
    "profile_for",
    "register_model_profile",
    "set_price",
]

M = 1_000_000


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
    source: str = "built-in"

    @property
    def model_id(self) -> str:
        return f"{self.provider}:{self.model}"

    @property
    def priced(self) -> bool:
        return self.input is not None and self.output is not None

    def cost(self, usage: Usage, *, audio_tokens: int = 0) -> float | None:
        """USD for ``usage``, or None when a price it needs is unknown."""
        if not self.priced:
            return None
        assert self.input is not None and self.output is not None
        if self.input == 0 and self.output == 0 and not self.cached_input and not self.cache_write:
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
            # Providers with a priced cache write do not publish a long-context one here.
            price_write = price_in if self.cache_write is None else None
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        written = min(usage.cache_write_tokens, usage.input_tokens - cached)
        audio = min(audio_tokens, usage.input_tokens - cached - written)
        plain = usage.input_tokens - cached - written - audio
        total = plain * price_in + usage.output_tokens * price_out
        if cached:
            if price_cached is None:
                return None
            total += cached * price_cached
        if written:
            if price_write is None:
                return None
            total += written * price_write
        if audio:
            total += audio * (self.audio_input if self.audio_input is not None else price_in)
        return total / M


def _p(
    provider: str,
    model: str,
    ctx: int | None,
    out: int | None,
    price_in: float,
    price_out: float,
    cached: float | None = None,
    **more: Any,
) -> ModelProfile:
    return ModelProfile(provider, model, ctx, out, price_in, price_out, cached, **more)


_K = 1_000
# Sources: the providers' pricing and model pages (OpenAI platform pricing, Anthropic pricing,
# Google AI for developers pricing, GroqCloud pricing, Cerebras pricing), standard tier.
_BUILTIN: tuple[ModelProfile, ...] = (
    # OpenAI
    _p("openai", "gpt-4o", 128 * _K, 16_384, 2.50, 10.00, 1.25),
    _p("openai", "gpt-4o-2024-05-13", 128 * _K, 4_096, 5.00, 15.00),
    _p("openai", "gpt-4o-mini", 128 * _K, 16_384, 0.15, 0.60, 0.075),
    _p("openai", "gpt-4.1", 1_047_576, 32_768, 2.00, 8.00, 0.50),
    _p("openai", "gpt-4.1-mini", 1_047_576, 32_768, 0.40, 1.60, 0.10),
    _p("openai", "gpt-4.1-nano", 1_047_576, 32_768, 0.10, 0.40, 0.025),
    _p("openai", "o1", 200 * _K, 100 * _K, 15.00, 60.00, 7.50),
    _p("openai", "o3", 200 * _K, 100 * _K, 2.00, 8.00, 0.50),
    _p("openai", "o3-mini", 200 * _K, 100 * _K, 1.10, 4.40, 0.55),
    _p("openai", "o4-mini", 200 * _K, 100 * _K, 1.10, 4.40, 0.275),
    _p("openai", "gpt-5", 400 * _K, 128 * _K, 1.25, 10.00, 0.125),
    _p("openai", "gpt-5-mini", 400 * _K, 128 * _K, 0.25, 2.00, 0.025),
    _p("openai", "gpt-5-nano", 400 * _K, 128 * _K, 0.05, 0.40, 0.005),
    _p("openai", "text-embedding-3-small", 8_191, None, 0.02, 0.0),
    _p("openai", "text-embedding-3-large", 8_191, None, 0.13, 0.0),
    _p("openai", "text-embedding-ada-002", 8_191, None, 0.10, 0.0),
    # Anthropic: cache_write is the 5-minute cache write (1.25x input).
    _p("anthropic", "claude-opus-4-5", 200 * _K, 64_000, 5.00, 25.00, 0.50, cache_write=6.25),
    _p("anthropic", "claude-opus-4-1", 200 * _K, 32_000, 15.00, 75.00, 1.50, cache_write=18.75),
    _p("anthropic", "claude-opus-4-0", 200 * _K, 32_000, 15.00, 75.00, 1.50, cache_write=18.75),
    _p("anthropic", "claude-opus-4", 200 * _K, 32_000, 15.00, 75.00, 1.50, cache_write=18.75),
    *(
        _p(
            "anthropic", name, 200 * _K, 64_000, 3.00, 15.00, 0.30, cache_write=3.75,
            # Prompts over 200k tokens (the 1M-token context beta) cost more.
            long_context_threshold=200 * _K, long_input=6.00, long_output=22.50,
            long_cached_input=0.60,
        )
        for name in ("claude-sonnet-4-5", "claude-sonnet-4-0", "claude-sonnet-4")
    ),
    _p("anthropic", "claude-3-7-sonnet", 200 * _K, 64_000, 3.00, 15.00, 0.30, cache_write=3.75),
    _p("anthropic", "claude-haiku-4-5", 200 * _K, 64_000, 1.00, 5.00, 0.10, cache_write=1.25),
    _p("anthropic", "claude-3-5-haiku", 200 * _K, 8_192, 0.80, 4.00, 0.08, cache_write=1.00),
    # Gemini: text/image/video input price; audio input has its own. Context-cache prices are
    # left unknown on purpose (they changed during 2025): a response served partly from the
    # cache then has cost None.
    _p(
        "gemini", "gemini-2.5-pro", 1_048_576, 65_536, 1.25, 10.00,
        long_context_threshold=200 * _K, long_input=2.50, long_output=15.00,
    ),
    _p("gemini", "gemini-2.5-flash", 1_048_576, 65_536, 0.30, 2.50, audio_input=1.00),
    _p("gemini", "gemini-2.5-flash-lite", 1_048_576, 65_536, 0.10, 0.40, audio_input=0.30),
    _p("gemini", "gemini-2.0-flash", 1_048_576, 8_192, 0.10, 0.40, audio_input=0.70),
    _p("gemini", "gemini-2.0-flash-lite", 1_048_576, 8_192, 0.075, 0.30),
    _p("gemini", "gemini-embedding-001", 2_048, None, 0.15, 0.0),
    # Groq
    _p("groq", "llama-3.3-70b-versatile", 131_072, 32_768, 0.59, 0.79),
    _p("groq", "llama-3.1-8b-instant", 131_072, 131_072, 0.05, 0.08),
    _p("groq", "meta-llama/llama-4-scout-17b-16e-instruct", 131_072, 8_192, 0.11, 0.34),
    _p("groq", "meta-llama/llama-4-maverick-17b-128e-instruct", 131_072, 8_192, 0.20, 0.60),
    # Cerebras: context windows depend on the plan, so they are left unknown.
    _p("cerebras", "llama3.1-8b", None, None, 0.10, 0.10),
    _p("cerebras", "llama-3.3-70b", None, None, 0.85, 1.20),
    # Running on this machine: free.
    _p("local", "*", None, None, 0.0, 0.0),
    _p("ollama", "*", None, None, 0.0, 0.0),
)  # fmt: skip

_builtin: dict[tuple[str, str], ModelProfile] = {(p.provider, p.model): p for p in _BUILTIN}
_generations = itertools.count(1)


class ProfileOverrides:
    """The model profiles a user registered in this kernel (a part of the session).

    ``generation`` is new after every change (and for every new set of overrides), so the
    memoised lookup below never serves a profile from before a change or a reset."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.profiles: dict[tuple[str, str], ModelProfile] = {}
        self.generation = next(_generations)

    def set(self, profile: ModelProfile) -> None:
        with self.lock:
            self.profiles[(profile.provider, profile.model)] = profile
            self.generation = next(_generations)


def _candidates(model: str) -> list[str]:
    names = [model]
    bare = model.removeprefix("models/")  # Gemini sometimes answers with "models/<name>"
    if bare != model:
        names.append(bare)
    stripped = undated(bare)
    if stripped != bare:
        names.append(stripped)
    names.append("*")
    return names


@functools.lru_cache(maxsize=1024)
def _lookup(provider: str, model: str, generation: int) -> ModelProfile | None:
    # ``generation`` changes whenever a profile is registered, which invalidates this cache.
    user = SESSION.get(ProfileOverrides).profiles
    for name in _candidates(model):
        for table in (user, _builtin):
            found = table.get((provider, name))
            if found is not None:
                return found
    return None


def profile_for(provider: str, model: str) -> ModelProfile | None:
    """The profile of ``model`` served by ``provider``, or None when nothing is known."""
    return _lookup(provider, model, SESSION.get(ProfileOverrides).generation)


def _split(model_id: str) -> tuple[str, str]:
    provider, sep, model = model_id.partition(":")
    if not sep or not provider or not model:
        raise ConfigError(
            f"write the model as provider:model (e.g. openai:gpt-4o-mini, or vllm:* for every "
            f"model of a provider); got {model_id!r}"
        )
    return provider, model


def model_profile(model_id: str) -> ModelProfile | None:
    """``lm.model_profile("openai:gpt-4o")``: what is known about a model (None: nothing)."""
    provider, model = _split(model_id)
    return profile_for(provider, model)


_PRICE_FIELDS = (
    "input",
    "output",
    "cached_input",
    "cache_write",
    "long_input",
    "long_output",
    "long_cached_input",
    "audio_input",
)


def register_model_profile(model_id: str, **fields_: Any) -> ModelProfile:
    """Describe a model, or correct what is known about it, for this kernel.

    ``model_id`` is ``provider:model`` (``provider:*`` for every model of a provider). Fields:
    ``context_window``, ``max_output``, prices in USD per 1M tokens (``input``, ``output``,
    ``cached_input``, ``cache_write``, ``long_input``, ``long_output``, ``long_cached_input``,
    ``audio_input``), ``long_context_threshold``, and per-key rate limits ``rpm``, ``rpd``,
    ``tpm`` that key rotation honours. Fields not given keep the built-in value when there is one.
    """
    provider, model = _split(model_id)
    known = {f.name for f in fields(ModelProfile)} - {"provider", "model", "source"}
    unknown = set(fields_) - known
    if unknown:
        raise ConfigError(
            f"unknown model profile field(s) {', '.join(sorted(unknown))}; "
            f"use {', '.join(sorted(known))}"
        )
    for name, value in fields_.items():
        if value is None:
            continue
        if name in _PRICE_FIELDS:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value < 0:
                raise ConfigError(
                    f"{name} must be a price in USD per 1M tokens (a number >= 0); got {value!r}"
                )
        elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a positive whole number; got {value!r}")
    overrides = SESSION.get(ProfileOverrides)
    base = overrides.profiles.get((provider, model)) or _builtin.get((provider, model))
    profile = replace(base or ModelProfile(provider, model), **fields_, source="user")
    overrides.set(profile)
    return profile


def set_price(
    model_id: str,
    input: float,
    output: float,
    *,
    cached_input: float | None = None,
    cache_write: float | None = None,
) -> ModelProfile:
    """``lm.set_price("vllm:qwen2.5", input=0.2, output=0.6)``: USD per 1M tokens."""
    extra = {"cached_input": cached_input, "cache_write": cache_write}
    return register_model_profile(
        model_id, input=input, output=output, **{k: v for k, v in extra.items() if v is not None}
    )


def cost_of(response: Response) -> float | None:
    """USD of ``response`` from its usage and the model's profile; None when unknown."""
    profile = profile_for(response.provider, response.model)
    if profile is None:
        return None
    return profile.cost(response.usage, audio_tokens=_audio_tokens(response))


def _audio_tokens(response: Response) -> int:
    # Gemini reports input tokens per modality (usageMetadata.promptTokensDetails).
    raw = response.raw
    if not isinstance(raw, dict):
        return 0
    meta = raw.get("usageMetadata") or raw.get("usage_metadata")
    if not isinstance(meta, dict):
        return 0
    total = 0
    for item in meta.get("promptTokensDetails") or []:
        if isinstance(item, dict) and str(item.get("modality", "")).upper() == "AUDIO":
            total += int(item.get("tokenCount") or 0)
    return total
