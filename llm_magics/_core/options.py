"""Which options a call takes, and the checks that turn a wrong one into a ConfigError before
anything is sent.

A keyword the package does not know is never put on the wire: a typo such as ``temprature=0``
would be refused by some providers (400) and silently ignored by others. ``extra_body={...}``
is the one way to send a field the package does not know.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ConfigError

__all__ = [
    "CHAT_DEFAULTS",
    "CHAT_OPTIONS",
    "CLIENT_DEFAULTS",
    "check_sampling",
    "check_timeout",
    "unknown_option_error",
]

#: Options of chat / achat / stream / astream.
CHAT_OPTIONS = frozenset(
    {
        "system",
        "temperature",
        "max_tokens",
        "top_p",
        "stop",
        "seed",
        "tools",
        "tool_choice",
        "schema",
        "json_mode",
        "extra_body",
        "cache",
        "timeout",
        "run_tools",
        "max_tool_rounds",
    }
)
#: Client defaults that apply to every chat request (``lm.client(..., temperature=0)``).
CHAT_DEFAULTS = frozenset({"system", "temperature", "max_tokens", "top_p", "seed", "extra_body"})
#: Client defaults that are not request fields: they never reach a chat body.
CLIENT_DEFAULTS = frozenset({"embed_model"})


def unknown_option_error(
    name: str, where: str, body_fields: Iterable[str] = (), provider: str = ""
) -> ConfigError:
    """``name`` is no option of ``where``: name the closest one (an option, or one of the
    ``body_fields`` the provider takes through ``extra_body``) and ``extra_body``."""
    fields = set(body_fields)
    close = difflib.get_close_matches(
        name, sorted(CHAT_OPTIONS | CLIENT_DEFAULTS | fields), n=1, cutoff=0.6
    )
    if close and close[0] in fields:
        hint = f" Did you mean extra_body={{{close[0]!r}: ...}}? ({provider} takes it there.)"
    elif close:
        hint = f" Did you mean {close[0]}=?"
    else:
        hint = ""
    return ConfigError(
        f"unknown option {name}= for {where}.{hint} To send a field the package does not "
        f"know, pass extra_body={{{name!r}: ...}}."
    )


def check_sampling(options: Mapping[str, Any]) -> None:
    """temperature, top_p, max_tokens and seed of a request, each checked for its type and
    range (the widest any provider takes; a provider's own limit is its 400)."""
    temperature = options.get("temperature")
    if temperature is not None:
        _number("temperature", temperature, 0.0, 2.0)
    top_p = options.get("top_p")
    if top_p is not None:
        _number("top_p", top_p, 0.0, 1.0)
    max_tokens = options.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise ConfigError(
            f"max_tokens must be a whole number of at least 1; got {max_tokens!r}. Leave it "
            "out for the model's default."
        )
    seed = options.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"seed must be a whole number; got {seed!r}")
    extra = options.get("extra_body")
    if extra is not None and not isinstance(extra, Mapping):
        raise ConfigError(f"extra_body must be a dict of fields to send; got {type(extra)}")


def check_timeout(timeout: Any) -> float | None:
    """``timeout=`` as seconds: a positive number, or None for the client's timeouts."""
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ConfigError(
            f"timeout must be a positive number of seconds (e.g. timeout=30); got {timeout!r}"
        )
    return float(timeout)


def _number(name: str, value: Any, low: float, high: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ConfigError(f"{name} must be a number from {low:g} to {high:g}; got {value!r}")
