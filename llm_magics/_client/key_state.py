"""One key of a :class:`~llm_magics._client.keys.KeyPool`: its counters and the sliding
windows that tell when it has headroom again.

Each key counts requests in the last minute (RPM), requests in the last day (RPD, in
one-minute buckets) and tokens in the last minute (TPM, where an entry is a reservation until
the real count replaces it). A limit learned from 429s is forgotten after ten minutes.

Thread safety: none of its own; the pool calls every method holding its lock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from .._core.secrets import APIKey
from .limits import RateLimits

__all__ = ["DAY", "LEARNED_LIMIT_TTL", "MINUTE", "KeyState"]

MINUTE = 60.0
DAY = 86_400.0
LEARNED_LIMIT_TTL = 600.0


@dataclass
class KeyState:
    """One key of a pool: its state (cooling down, dead), totals, and the sliding windows
    of its last minute and last day."""

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
