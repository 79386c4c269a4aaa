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
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .._core.errors import AuthenticationError, ConfigError
from .._core.fmt import markdown_table
from .._core.secrets import APIKey
from .._runtime.waits import announce
from .key_state import MINUTE, KeyState
from .limits import NO_LIMITS, RateLimits, limits_from_env, shared_limits

__all__ = ["MINUTE", "KeyPool", "RateLimits"]

log = logging.getLogger("llm_magics._client.keys")

COOLDOWN_START = 60.0
COOLDOWN_MAX = 3600.0
#: Extra seconds a minute-window slot stays taken. The provider counts a request when it
#: arrives, we count it when we send it; the margin absorbs the difference in transit time.
DEFAULT_MARGIN = 1.0
_MIN_LEARNED = 2


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
        self.limits = limits or NO_LIMITS
        self.learn = learn
        self.margin = margin
        self._states = [KeyState(APIKey(k, env)) for k in keys]
        self._next = 0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._states)

    def __repr__(self) -> str:
        return f"KeyPool({self.provider!r}, {len(self)} keys)"

    def _state(self, key: APIKey) -> KeyState:
        return self._states[self.index_of(key)]

    def index_of(self, key: APIKey) -> int:
        """Where ``key`` is in this pool (pools built from the same keys agree on it)."""
        for i, s in enumerate(self._states):
            if s.key is key:
                return i
        raise KeyError(repr(key))

    def key_at(self, index: int) -> APIKey:
        return self._states[index].key

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
                found = found.or_else(shared_limits(profile.rpm, profile.rpd, profile.tpm))
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
                first: KeyState | None = None
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

    def _why_waiting(self, state: KeyState | None, now: float, limits: RateLimits) -> str:
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

    def find(self, fingerprint: str) -> APIKey | None:
        """The live key whose :attr:`~llm_magics._core.secrets.APIKey.fingerprint` this is."""
        for state in self._states:
            if state.key.fingerprint == fingerprint and not state.dead:
                return state.key
        return None

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

    def secrets(self) -> list[str]:
        """The keys themselves, in pool order: only for handing them to a process of the same
        job through its environment (a Ray worker), never to show."""
        return [s.key.reveal() for s in self._states]

    def fingerprints(self) -> tuple[str, ...]:
        """The keys' fingerprints (salted hashes that reveal nothing), in pool order."""
        return tuple(s.key.fingerprint for s in self._states)

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
