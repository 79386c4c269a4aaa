"""The model profiles of this kernel, and the cost of a response.

The built-in profiles (context window, maximum output, prices in USD per 1M tokens) live in the
vendors' entries of :mod:`llm_magics.providers.catalog`, with the cost formula
(:meth:`ModelProfile.cost`). A model without a profile gets ``cost = None`` ("unknown"), never
a guess presented as fact. Users fill the gaps or correct a price with :func:`set_price` /
:func:`register_model_profile`, which win over the built-ins; a server registered ``like=`` a
vendor adopts that vendor's profiles under its own name. Local models (``local``, ``ollama``)
cost 0. For Gemini, audio input tokens are priced at ``audio_input`` when the response reports
its modality breakdown.

Lookup of ``provider:model``: user profiles, then adopted, then built-ins, exact first, then
without a date suffix (``gpt-4o-mini-2024-07-18`` -> ``gpt-4o-mini``,
``claude-sonnet-4-5-20250929`` -> ``claude-sonnet-4-5``) or ``-latest``, then the provider-wide
profile (``ollama:*``).

Thread safety: lookups and registrations may happen from any thread.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
from collections.abc import Iterable
from dataclasses import fields, replace
from typing import Any

from .._core.errors import ConfigError
from .._core.session import SESSION
from .._core.types import Response
from ..providers.catalog import VENDORS, ModelProfile, Vendor, undated

__all__ = [
    "ModelProfile",
    "cache_saving_of",
    "cost_of",
    "known_profiles",
    "model_profile",
    "profile_for",
    "register_model_profile",
    "set_price",
]


def _rows(vendors: Iterable[Vendor]) -> dict[tuple[str, str], ModelProfile]:
    return {(row.provider, row.model): row for vendor in vendors for row in vendor.models}


_builtin = _rows(VENDORS.values())
_generations = itertools.count(1)


class ProfileOverrides:
    """The model profiles of this kernel beyond the built-in vendors' (a part of the session):
    ``profiles`` the user registered, ``adopted`` the ones of servers registered
    ``like=`` a vendor (under the server's name). User profiles win over both.

    ``generation`` is new after every change (and for every new set of overrides), so the
    memoised lookup below never serves a profile from before a change or a reset."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.profiles: dict[tuple[str, str], ModelProfile] = {}
        self.adopted: dict[tuple[str, str], ModelProfile] = {}
        self.generation = next(_generations)

    def set(self, profile: ModelProfile) -> None:
        with self.lock:
            self.profiles[(profile.provider, profile.model)] = profile
            self.generation = next(_generations)

    def adopt(self, vendor: Vendor) -> None:
        """Take ``vendor``'s model profiles as the built-ins of its name (replacing any
        adopted before under that name)."""
        with self.lock:
            kept = {k: v for k, v in self.adopted.items() if k[0] != vendor.name}
            self.adopted = kept | _rows([vendor])
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
    overrides = SESSION.get(ProfileOverrides)
    for name in _candidates(model):
        for table in (overrides.profiles, overrides.adopted, _builtin):
            found = table.get((provider, name))
            if found is not None:
                return found
    return None


def profile_for(provider: str, model: str) -> ModelProfile | None:
    """The profile of ``model`` served by ``provider``, or None when nothing is known."""
    return _lookup(provider, model, SESSION.get(ProfileOverrides).generation)


def known_profiles(provider: str) -> list[ModelProfile]:
    """The profiles of ``provider``'s models known to this kernel (user-registered, adopted,
    built-in; the user's win), by model name; a provider-wide ``*`` row is left out."""
    overrides = SESSION.get(ProfileOverrides)
    found: dict[str, ModelProfile] = {}
    for table in (_builtin, overrides.adopted, overrides.profiles):  # later ones win
        found.update({m: row for (p, m), row in table.items() if p == provider and m != "*"})
    return [found[m] for m in sorted(found)]


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
    ``audio_input``), ``long_context_threshold``, ``batch`` (the fraction of every price a
    provider Batch API job bills, e.g. 0.5), ``cache_min_tokens`` (the shortest prefix the
    prompt cache stores), and per-key rate limits ``rpm``, ``rpd``, ``tpm`` that key rotation
    honours. Fields not given keep the built-in value when there is one.
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
        elif name == "batch":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not 0 < value <= 1:
                raise ConfigError(
                    f"batch must be the fraction of the online price a batch job bills "
                    f"(0 < batch <= 1, e.g. 0.5); got {value!r}"
                )
        elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a positive whole number; got {value!r}")
    overrides = SESSION.get(ProfileOverrides)
    key = (provider, model)
    base = overrides.profiles.get(key) or overrides.adopted.get(key) or _builtin.get(key)
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


def cost_of(response: Response, *, batch: bool = False) -> float | None:
    """USD of ``response`` from its usage and the model's profile; None when unknown.
    ``batch``: billed as part of a provider Batch API job."""
    profile = profile_for(response.provider, response.model)
    if profile is None:
        return None
    return profile.cost(response.usage, audio_tokens=_audio_tokens(response), batch=batch)


def cache_saving_of(response: Response) -> float | None:
    """USD the provider's prompt cache saved on ``response`` (negative when a cache write
    cost more than it saved; 0.0 when nothing was cached; None when a price is unknown),
    at the rate the response was billed: a batch answer's cost is half the online one, and
    so is its saving."""
    usage = response.usage
    if not usage.cached_input_tokens and not usage.cache_write_tokens:
        return 0.0
    profile = profile_for(response.provider, response.model)
    if profile is None:
        return None
    saving, online = profile.cache_saving(usage), profile.cost(usage)
    if saving is None or online is None:
        return None
    if response.cost is not None and online > 0:
        saving *= response.cost / online  # billed below the online price: a batch job
    return saving


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
