"""Per-key rate limits and where they are read from besides the code: the environment.

:class:`RateLimits` holds requests per minute, requests per day and tokens per minute (each
None when unknown). ``<PROVIDER>_RPM_LIMIT``, ``<PROVIDER>_RPD_LIMIT`` and
``<PROVIDER>_TPM_LIMIT`` (e.g. ``GROQ_RPM_LIMIT=30``) are read on every call, so a change
applies at once; a bad value is a ConfigError naming the variable.

Thread safety: RateLimits is immutable and the parse caches are ``functools.lru_cache``s,
which are thread-safe.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, fields

from .._core.errors import ConfigError

__all__ = ["NO_LIMITS", "RateLimits", "env_prefix", "limits_from_env", "shared_limits"]


@dataclass(frozen=True)
class RateLimits:
    """Per-key limits: requests per minute, requests per day, tokens per minute (None: no
    limit known)."""

    rpm: int | None = None
    rpd: int | None = None
    tpm: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"rate limit {f.name} must be a positive integer; got {value!r}")

    def or_else(self, other: RateLimits) -> RateLimits:
        """Each limit from ``self`` when set, else from ``other``."""
        if other == NO_LIMITS or self == other:
            return self
        return RateLimits(
            self.rpm if self.rpm is not None else other.rpm,
            self.rpd if self.rpd is not None else other.rpd,
            self.tpm if self.tpm is not None else other.tpm,
        )


NO_LIMITS = RateLimits()


@functools.lru_cache(maxsize=256)
def shared_limits(rpm: int | None, rpd: int | None, tpm: int | None) -> RateLimits:
    """One RateLimits object per combination (a model profile's limits are looked up often)."""
    return RateLimits(rpm, rpd, tpm)


@functools.lru_cache(maxsize=64)
def env_prefix(provider: str) -> str:
    """``GROQ`` for ``groq``; any character that cannot appear in a variable name becomes _."""
    return re.sub(r"[^A-Z0-9_]", "_", provider.upper())


def limits_from_env(provider: str) -> RateLimits:
    """``<P>_RPM_LIMIT``, ``<P>_RPD_LIMIT``, ``<P>_TPM_LIMIT``; a bad value is a ConfigError
    naming the variable."""
    names = _limit_env_names(provider)
    return _parse_env_limits(provider, tuple(os.environ.get(n, "") for n in names))


@functools.lru_cache(maxsize=64)
def _limit_env_names(provider: str) -> tuple[str, str, str]:
    prefix = env_prefix(provider)
    return (f"{prefix}_RPM_LIMIT", f"{prefix}_RPD_LIMIT", f"{prefix}_TPM_LIMIT")


# Called on every acquire(): the parse is cached by the variables' raw values, so a changed
# environment still takes effect at once.
@functools.lru_cache(maxsize=256)
def _parse_env_limits(provider: str, raws: tuple[str, ...]) -> RateLimits:
    found: dict[str, int | None] = {}
    for kind, name, text in zip(
        ("rpm", "rpd", "tpm"), _limit_env_names(provider), raws, strict=True
    ):
        raw = text.strip()
        if not raw:
            found[kind] = None
            continue
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigError(
                f"{name}={raw!r} is not a positive whole number; set it to the {kind.upper()} "
                f"limit of one {provider} key (e.g. {name}=30) or unset it."
            )
        found[kind] = value
    return RateLimits(**found)
