"""API keys and key pools.

An :class:`APIKey` never shows its secret: ``repr``, ``str`` and format give ``...abcd`` (the
last four characters) so a key cannot leak through a log line or an f-string by accident.

A :class:`KeyPool` hands out the keys of one provider. ``acquire`` picks a usable key and
waits (asynchronously, never busy-waiting) while every key is cooling down after a 429.

Thread safety: a pool is used from the package's event-loop thread; ``status`` may be read
from any thread. Clock and sleep are injectable, so tests never wait for real.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import AuthenticationError, ConfigError

__all__ = ["APIKey", "KeyPool"]

COOLDOWN_START = 60.0
COOLDOWN_MAX = 240.0


class APIKey:
    """A secret that prints as its last four characters."""

    __slots__ = ("_secret", "env")

    def __init__(self, secret: str, env: str | None = None) -> None:
        self._secret = secret
        self.env = env

    def reveal(self) -> str:
        """The secret itself: only for building a request header."""
        return self._secret

    @property
    def hint(self) -> str:
        return self._secret[-4:] if len(self._secret) >= 8 else "****"

    def __repr__(self) -> str:
        return f"APIKey('...{self.hint}')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> Any:
        raise TypeError("APIKey objects are not picklable: keys never leave the process")


@dataclass
class _KeyState:
    key: APIKey
    cooldown_until: float = 0.0
    strikes: int = 0
    dead: bool = False
    requests: int = 0
    rate_limited: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class KeyPool:
    """Rotates the keys of one provider; a 429 cools that key down, a 401 retires it."""

    def __init__(
        self,
        provider: str,
        keys: Sequence[str],
        *,
        env: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if not keys:
            raise ConfigError(f"a key pool for {provider} needs at least one key")
        self.provider = provider
        self.env = env
        self._states = [_KeyState(APIKey(k, env)) for k in keys]
        self._next = 0
        self._clock = clock
        self._sleep = sleep

    def __len__(self) -> int:
        return len(self._states)

    def __repr__(self) -> str:
        return f"KeyPool({self.provider!r}, {len(self)} keys)"

    def _state(self, key: APIKey) -> _KeyState:
        for s in self._states:
            if s.key is key:
                return s
        raise KeyError(repr(key))

    async def acquire(self, estimated_tokens: int = 0) -> APIKey:
        """A live key that is not cooling down, in round-robin order; waits when none is."""
        while True:
            live = [s for s in self._states if not s.dead]
            if not live:
                raise AuthenticationError(
                    f"every {self.provider} key was rejected by the provider "
                    f"({', '.join('...' + s.key.hint for s in self._states)}). "
                    f"Set {self.env or 'the key variable'} to valid keys.",
                    provider=self.provider,
                )
            now = self._clock()
            n = len(self._states)
            for offset in range(n):
                state = self._states[(self._next + offset) % n]
                if not state.dead and state.cooldown_until <= now:
                    self._next = (self._next + offset + 1) % n
                    state.requests += 1
                    return state.key
            wake = min(s.cooldown_until for s in live)
            await self._sleep(max(wake - now, 0.001))

    def record(self, key: APIKey, input_tokens: int = 0, output_tokens: int = 0) -> None:
        state = self._state(key)
        state.strikes = 0
        state.input_tokens += input_tokens
        state.output_tokens += output_tokens

    def rate_limited(self, key: APIKey, retry_after: float | None) -> None:
        """Cool the key down: Retry-After when given, else 60 -> 120 -> 240 s."""
        state = self._state(key)
        state.rate_limited += 1
        if retry_after is None:
            retry_after = min(COOLDOWN_START * 2**state.strikes, COOLDOWN_MAX)
        state.strikes += 1
        state.cooldown_until = max(state.cooldown_until, self._clock() + retry_after)

    def auth_failed(self, key: APIKey) -> None:
        self._state(key).dead = True

    @property
    def has_live_keys(self) -> bool:
        return any(not s.dead for s in self._states)

    def status(self) -> list[dict[str, Any]]:
        """Per key, masked: state, requests, 429s, tokens."""
        now = self._clock()
        rows = []
        for s in self._states:
            if s.dead:
                state = "dead (rejected)"
            elif s.cooldown_until > now:
                state = f"cooling down {s.cooldown_until - now:.0f}s"
            else:
                state = "ok"
            rows.append(
                {
                    "key": f"...{s.key.hint}",
                    "state": state,
                    "requests": s.requests,
                    "rate_limited": s.rate_limited,
                    "input_tokens": s.input_tokens,
                    "output_tokens": s.output_tokens,
                }
            )
        return rows
