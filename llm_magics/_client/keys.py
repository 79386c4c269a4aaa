"""API keys, key pools and client-side rate limits.

An :class:`APIKey` never shows its secret: ``repr``, ``str`` and format give ``...abcd`` (the
last four characters) so a key cannot leak through a log line or an f-string by accident.

A :class:`KeyPool` hands out the keys of one provider (``<P>_API_KEYS=k1,k2,k3`` builds one
with three keys). Each key keeps sliding-window counters: requests in the last minute (RPM),
requests in the last day (RPD, in one-minute buckets) and tokens in the last minute (TPM).
``acquire`` picks, in round-robin order, a live key with headroom under every limit and
returns at once; when no key has headroom it sleeps (asynchronously, never busy-waiting)
until the earliest moment one will. A slot is taken when the key is handed out, so concurrent
requests never overshoot a limit the pool knows.

Where limits come from, per limit, first match wins:

1. ``KeyPool(..., limits=RateLimits(rpm=30))``;
2. the environment: ``<PROVIDER>_RPM_LIMIT``, ``<PROVIDER>_RPD_LIMIT``, ``<PROVIDER>_TPM_LIMIT``
   (e.g. ``GROQ_RPM_LIMIT=30``), read on every acquire so a change applies at once;
3. the model's profile in :mod:`llm_magics._client.pricing` (``register_model_profile(..., rpm=)``);
   built-in profiles carry no limits, because they depend on the account's tier;
4. learned: after a second 429 on a key within a minute, the number of requests it got
   through in the last minute becomes its RPM limit (only when 1-3 give none, and only when
   at least two got through). A single 429 never throttles a key beyond its Retry-After. A
   learned limit is forgotten after ten minutes without another 429 on that key.

A 429 cools the key down for its Retry-After when the provider gave one, else 60 -> 120 ->
240 s ... doubling up to an hour; the request moves to another key (see
``Client._after_failure``). Every wait in ``acquire`` is announced first (see
:mod:`llm_magics._runtime.waits`), with the key and the reason. A 401/403
retires a key for the rest of the session, logged with its last four characters only.
:meth:`KeyPool.status` gives the rows of ``%llm keys``.

Thread safety: every method may be called from any thread and from several event loops (a
lock guards the counters; ``acquire`` never holds it while sleeping). Clock and sleep are
injectable, so tests never wait for real.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from .._core.errors import AuthenticationError, ConfigError
from .._core.fmt import markdown_table
from .._core.secrets import APIKey
from .._runtime.waits import announce

__all__ = ["KeyPool", "RateLimits"]

log = logging.getLogger("llm_magics._client.keys")

COOLDOWN_START = 60.0
COOLDOWN_MAX = 3600.0
MINUTE = 60.0
DAY = 86_400.0
#: Extra seconds a minute-window slot stays taken. The provider counts a request when it
#: arrives, we count it when we send it; the margin absorbs the difference in transit time.
DEFAULT_MARGIN = 1.0
LEARNED_LIMIT_TTL = 600.0
_MIN_LEARNED = 2


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
        if other == _NO_LIMITS or self == other:
            return self
        return RateLimits(
            self.rpm if self.rpm is not None else other.rpm,
            self.rpd if self.rpd is not None else other.rpd,
            self.tpm if self.tpm is not None else other.tpm,
        )


_NO_LIMITS = RateLimits()


@functools.lru_cache(maxsize=256)
def _limits(rpm: int | None, rpd: int | None, tpm: int | None) -> RateLimits:
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
    learned_rpm: int | None = None
    learned_at: float = 0.0
    last_429: float = float("-inf")
    # Send times of the requests of the last minute (+ margin), oldest first.
    minute: deque[float] = field(default_factory=deque)
    # [time, tokens] of the last minute; an entry is a reservation until record() settles it.
    tokens: deque[list[float]] = field(default_factory=deque)
    token_sum: float = 0.0
    pending: deque[list[float]] = field(default_factory=deque)
    # [bucket start, requests] per clock minute of the last day.
    day: deque[list[float]] = field(default_factory=deque)
    day_count: int = 0

    def prune(self, now: float, span: float) -> None:
        cutoff = now - span
        while self.minute and self.minute[0] <= cutoff:
            self.minute.popleft()
        while self.tokens and self.tokens[0][0] <= cutoff:
            self.token_sum -= self.tokens.popleft()[1]
        while self.pending and self.pending[0][0] <= cutoff:
            self.pending.popleft()
        while self.day and self.day[0][0] + MINUTE <= now - DAY:
            self.day_count -= int(self.day.popleft()[1])
        if self.learned_rpm is not None and now - self.learned_at > LEARNED_LIMIT_TTL:
            self.learned_rpm = None

    def ready_at(self, now: float, limits: RateLimits, tokens: int, span: float) -> float:
        """The earliest time this key has headroom for one more request of ``tokens``."""
        ready = max(now, self.cooldown_until)
        rpm = limits.rpm if limits.rpm is not None else self.learned_rpm
        if rpm is not None and len(self.minute) >= rpm:
            ready = max(ready, self.minute[len(self.minute) - rpm] + span)
        if limits.rpd is not None and self.day_count >= limits.rpd:
            excess = self.day_count - limits.rpd + 1
            for start, count in self.day:
                excess -= int(count)
                if excess <= 0:
                    ready = max(ready, start + MINUTE + DAY)
                    break
        if limits.tpm is not None and self.token_sum + tokens > limits.tpm:
            # A request larger than the whole budget waits for an empty window, then goes.
            need = self.token_sum + min(tokens, limits.tpm) - limits.tpm
            for stamp, used in self.tokens:
                need -= used
                if need <= 0:
                    ready = max(ready, stamp + span)
                    break
            else:
                if self.tokens:
                    ready = max(ready, self.tokens[-1][0] + span)
        return ready

    def take(self, now: float, tokens: int) -> None:
        self.requests += 1
        self.minute.append(now)
        entry = [now, float(tokens)]
        self.tokens.append(entry)
        self.pending.append(entry)
        self.token_sum += tokens
        start = math.floor(now / MINUTE) * MINUTE
        if self.day and self.day[-1][0] == start:
            self.day[-1][1] += 1
        else:
            self.day.append([start, 1])
        self.day_count += 1


class KeyPool:
    """Rotates the keys of one provider within their rate limits; a 429 cools that key down,
    a 401 retires it."""

    def __init__(
        self,
        provider: str,
        keys: Sequence[str],
        *,
        env: str | None = None,
        limits: RateLimits | None = None,
        learn: bool = True,
        margin: float = DEFAULT_MARGIN,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if not keys:
            raise ConfigError(f"a key pool for {provider} needs at least one key")
        self.provider = provider
        self.env = env
        self.limits = limits or _NO_LIMITS
        self.learn = learn
        self.margin = margin
        self._states = [_KeyState(APIKey(k, env)) for k in keys]
        self._next = 0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._states)

    def __repr__(self) -> str:
        return f"KeyPool({self.provider!r}, {len(self)} keys)"

    def _state(self, key: APIKey) -> _KeyState:
        for s in self._states:
            if s.key is key:
                return s
        raise KeyError(repr(key))

    @property
    def _span(self) -> float:
        return MINUTE + self.margin

    def limits_for(self, model: str | None = None) -> RateLimits:
        """The limits that apply now: arguments, then environment, then the model profile."""
        found = self.limits.or_else(limits_from_env(self.provider))
        if model and (found.rpm is None or found.rpd is None or found.tpm is None):
            from .pricing import profile_for

            profile = profile_for(self.provider, model)
            if profile is not None:
                found = found.or_else(_limits(profile.rpm, profile.rpd, profile.tpm))
        return found

    async def acquire(self, estimated_tokens: int = 0, *, model: str | None = None) -> APIKey:
        """A live key with headroom, in round-robin order; waits until one has headroom.

        ``estimated_tokens`` (prompt plus expected answer) is reserved against the key's TPM
        limit until :meth:`record` replaces it with the real count.
        """
        limits = self.limits_for(model)
        tokens = max(int(estimated_tokens), 0)
        announced = ""
        while True:
            with self._lock:
                now = self._clock()
                n = len(self._states)
                wake = math.inf
                first: _KeyState | None = None
                for offset in range(n):
                    index = (self._next + offset) % n
                    state = self._states[index]
                    if state.dead:
                        continue
                    state.prune(now, self._span)
                    ready = state.ready_at(now, limits, tokens, self._span)
                    if ready <= now:
                        state.take(now, tokens)
                        self._next = (index + 1) % n
                        return state.key
                    if ready < wake:
                        wake, first = ready, state
                if wake == math.inf:
                    raise AuthenticationError(
                        f"every {self.provider} key was rejected by the provider "
                        f"({', '.join('...' + s.key.hint for s in self._states)}). "
                        f"Set {self.env or 'the key variable'} to valid keys.",
                        provider=self.provider,
                    )
                reason = self._why_waiting(first, now, limits)
            if reason != announced:
                announce(wake - now, reason)
                announced = reason
            await self._sleep(max(wake - now, 0.001))

    def _why_waiting(self, state: _KeyState | None, now: float, limits: RateLimits) -> str:
        """Why the key that is ready first is not ready now (the lock is held)."""
        if state is None:
            return f"no {self.provider} key is ready"
        which = f"{self.provider} key ...{state.key.hint}"
        if len(self._states) > 1:
            which = f"every {self.provider} key is busy; {which}"
        if state.cooldown_until > now:
            return f"{which} is cooling down after a 429 (rate limit)"
        rpm = limits.rpm if limits.rpm is not None else state.learned_rpm
        if rpm is not None and len(state.minute) >= rpm:
            learned = " (learned from 429s)" if limits.rpm is None else ""
            return f"{which} is at its limit of {rpm} requests per minute{learned}"
        if limits.rpd is not None and state.day_count >= limits.rpd:
            return f"{which} is at its limit of {limits.rpd} requests per day"
        return f"{which} is at its limit of {limits.tpm} tokens per minute"

    def record(self, key: APIKey, input_tokens: int = 0, output_tokens: int = 0) -> None:
        """A request on ``key`` succeeded and used these tokens."""
        with self._lock:
            state = self._state(key)
            state.strikes = 0
            state.input_tokens += input_tokens
            state.output_tokens += output_tokens
            used = float(input_tokens + output_tokens)
            now = self._clock()
            if state.pending:
                entry = state.pending.popleft()
                if entry[0] > now - self._span:
                    state.token_sum += used - entry[1]
                    entry[1] = used
                    return
            entry = [now, used]
            state.tokens.append(entry)
            state.token_sum += used

    def rate_limited(self, key: APIKey, retry_after: float | None) -> None:
        """Cool the key down: Retry-After when given, else 60 -> 120 -> 240 s ... up to 1 h."""
        with self._lock:
            state = self._state(key)
            now = self._clock()
            state.prune(now, self._span)
            state.rate_limited += 1
            if state.minute:
                # The provider did not count the refused request: free its slot, so it does
                # not hold the key back for a whole window (the cool-down covers the wait).
                state.minute.pop()
            if retry_after is None:
                retry_after = min(COOLDOWN_START * 2**state.strikes, COOLDOWN_MAX)
            # Learning needs a second 429 within a window: a success in between resets the
            # back-off (strikes), but not this, or alternating 429s would never teach a limit.
            repeated = now - state.last_429 <= self._span
            state.last_429 = now
            state.strikes += 1
            state.cooldown_until = max(state.cooldown_until, now + retry_after)
            if repeated and self.learn and self.limits.rpm is None:
                got_through = len(state.minute)
                if got_through >= _MIN_LEARNED and limits_from_env(self.provider).rpm is None:
                    if state.learned_rpm is None or got_through < state.learned_rpm:
                        state.learned_rpm = got_through
                    state.learned_at = now

    def auth_failed(self, key: APIKey) -> None:
        """The provider rejected ``key`` (401/403): skip it for the rest of the session."""
        with self._lock:
            state = self._state(key)
            if state.dead:
                return
            state.dead = True
            live = sum(not s.dead for s in self._states)
        log.warning(
            "%s rejected the key ending in ...%s; it is skipped from now on (%d of %d keys "
            "left). Remove or replace it in %s.",
            self.provider,
            key.hint,
            live,
            len(self._states),
            self.env or "the key configuration",
        )

    @property
    def has_live_keys(self) -> bool:
        return any(not s.dead for s in self._states)

    def status(self, model: str | None = None) -> list[dict[str, Any]]:
        """Per key, masked: state, requests, 429s, tokens, and each window's use / limit."""
        limits = self.limits_for(model)
        rows = []
        with self._lock:
            now = self._clock()
            for s in self._states:
                s.prune(now, self._span)
                if s.dead:
                    state = "dead (rejected)"
                elif s.cooldown_until > now:
                    state = f"cooling down {s.cooldown_until - now:.0f}s"
                else:
                    state = "ok"
                rpm = limits.rpm if limits.rpm is not None else s.learned_rpm
                learned = limits.rpm is None and s.learned_rpm is not None
                rows.append(
                    {
                        "key": f"...{s.key.hint}",
                        "state": state,
                        "requests": s.requests,
                        "rate_limited": s.rate_limited,
                        "input_tokens": s.input_tokens,
                        "output_tokens": s.output_tokens,
                        "rpm": _use(len(s.minute), rpm) + (" (learned)" if learned else ""),
                        "rpd": _use(s.day_count, limits.rpd),
                        "tpm": _use(int(s.token_sum), limits.tpm),
                    }
                )
        return rows

    def _repr_markdown_(self) -> str:
        rows = self.status()
        head = list(rows[0])
        table = markdown_table(head, [[r[h] for h in head] for r in rows])
        return f"**{self.provider}** key pool ({len(rows)} keys)\n\n{table}"


def _use(used: int, limit: int | None) -> str:
    return f"{used}/{limit}" if limit is not None else str(used)
