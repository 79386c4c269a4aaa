"""Spending limits: the kernel's budget (``lm.budget(usd=5)``, ``%llm budget 5``) and the cap
of one run (``df.llm.map(..., max_cost=0.5)``).

What counts: the USD of every fresh answer of this kernel (a response-cache hit costs nothing
now), as its cost is known, from the kernel's start; ``lm.reset_usage()`` does not give money
back. A budget is a ceiling on that total, a cap a ceiling on what one run spends.

How it is kept: before a request is sent (:func:`admit`), its cost is estimated from its
prompt tokens and its ``max_tokens`` (else :data:`ANSWER_GUESS` output tokens) at the model's
price, and reserved; a request whose estimate does not fit what is left, counting what other
requests in flight have reserved, is refused with :class:`~llm_magics.BudgetExceededError`
and never sent. When its answer arrives (:func:`spend`), the reservation gives way to the
real cost. A request of unknown price cannot be kept within a limit, so while one is set such
a request is refused too, saying so; answers whose cost turns out unknown (a cached-token
price missing) are counted as ``unknown``.

Caps are scoped with :func:`spending_cap` (a context variable), so the requests of one run
meet its cap and nobody else's.

Thread safety: the budget's counters are guarded by a lock; caps are per context.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .._core.errors import BudgetExceededError, ConfigError
from .._core.fmt import money
from .._core.session import SESSION
from .._core.types import ChatRequest, Response, Usage
from .pricing import profile_for
from .usage import estimate_request_tokens

__all__ = [
    "ANSWER_GUESS",
    "Budget",
    "BudgetStatus",
    "Limit",
    "Ticket",
    "active_limits",
    "admit",
    "budget",
    "check_usd",
    "spend",
    "spending_cap",
]

#: Output tokens assumed for a request without ``max_tokens`` when reserving its cost.
ANSWER_GUESS = 150

_RAISE_BUDGET = "raise it with lm.budget(usd=...) or %llm budget USD, then rerun"
_RAISE_CAP = "pass a higher max_cost= and rerun"


class Limit:
    """A ceiling on spend: what was spent under it, what requests in flight reserved, and
    how many answers had an unknown price."""

    def __init__(self, usd: float | None, what: str, how_to_raise: str) -> None:
        self.lock = threading.Lock()
        self.usd = usd
        self.what = what
        self.how_to_raise = how_to_raise
        self.spent = 0.0
        self.reserved = 0.0
        self.unknown = 0

    @property
    def remaining(self) -> float | None:
        if self.usd is None:
            return None
        return max(self.usd - self.spent - self.reserved, 0.0)

    def reserve(self, estimate: float | None, model_id: str) -> None:
        """Hold ``estimate`` USD for a request, or refuse it (BudgetExceededError)."""
        with self.lock:
            if self.usd is None:
                return
            if estimate is None:
                raise BudgetExceededError(
                    f"not sent: the price of {model_id} is unknown, so {self.what} of "
                    f"{money(self.usd)} cannot be kept. Give it a price with "
                    f"lm.set_price({model_id!r}, input=..., output=...), or lift the limit.",
                    limit=self.usd,
                    spent=self.spent,
                )
            if self.spent + self.reserved + estimate > self.usd + 1e-12:
                raise BudgetExceededError(
                    f"not sent: {self.what} of {money(self.usd)} is reached "
                    f"({money(self.spent)} spent{self.unknown_text()}, {money(self.reserved)} "
                    f"in flight; this request would cost about {money(estimate)}); "
                    f"{self.how_to_raise}: answered rows are kept in the cache.",
                    limit=self.usd,
                    spent=self.spent,
                    estimate=estimate,
                )
            self.reserved += estimate

    def unknown_text(self) -> str:
        """`` + N calls of unknown price`` (not counted in the spend), or nothing."""
        n = self.unknown
        return f" + {n} call{'s' if n != 1 else ''} of unknown price" if n else ""

    def release(self, estimate: float | None) -> None:
        with self.lock:
            if estimate is not None and self.usd is not None:
                self.reserved = max(self.reserved - estimate, 0.0)

    def add(self, cost: float | None) -> None:
        with self.lock:
            if cost is None:
                self.unknown += 1
            else:
                self.spent += cost


class Budget(Limit):
    """The kernel's budget (a part of the session): no limit until one is set."""

    def __init__(self) -> None:
        super().__init__(None, "this kernel's budget", _RAISE_BUDGET)


_CAPS: ContextVar[tuple[Limit, ...]] = ContextVar("llm_magics_spending_caps", default=())


def check_usd(value: Any, name: str) -> float:
    """``value`` as USD, or a ConfigError naming ``name``."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} takes an amount in US dollars (a number >= 0); got {value!r}")
    return float(value)


@contextlib.contextmanager
def spending_cap(usd: float | None, what: str = "max_cost=") -> Iterator[Limit | None]:
    """Within the block, requests also meet a cap of ``usd`` (None: no cap)."""
    if usd is None:
        yield None
        return
    cap = Limit(check_usd(usd, "max_cost="), what, _RAISE_CAP)
    token = _CAPS.set((*_CAPS.get(), cap))
    try:
        yield cap
    finally:
        _CAPS.reset(token)


def active_limits() -> list[Limit]:
    """The limits a request made here would meet: the kernel's budget, and the caps of the
    runs it belongs to."""
    found = [SESSION.get(Budget), *_CAPS.get()]
    return [limit for limit in found if limit.usd is not None]


def request_cost(provider: str, model: str, request: ChatRequest) -> float | None:
    """What ``request`` may cost: its prompt tokens and ``max_tokens`` (else
    :data:`ANSWER_GUESS`) at the model's price; None when the price is unknown."""
    profile = profile_for(provider, model)
    if profile is None:
        return None
    answer = request.max_tokens or ANSWER_GUESS
    prompt = estimate_request_tokens(request) - (request.max_tokens or 0)
    return profile.cost(Usage(max(prompt, 1), answer))


@dataclass
class Ticket:
    """The reservation of one request under each limit it met."""

    limits: list[Limit]
    estimate: float | None

    def release(self) -> None:
        for limit in self.limits:
            limit.release(self.estimate)


def admit(provider: str, model: str, request: ChatRequest) -> Ticket | None:
    """Reserve the cost of ``request`` under every active limit, or raise
    BudgetExceededError (nothing stays reserved then). None when no limit is set."""
    limits = active_limits()
    if not limits:
        return None
    estimate = request_cost(provider, model, request)
    taken: list[Limit] = []
    try:
        for limit in limits:
            limit.reserve(estimate, f"{provider}:{model}")
            taken.append(limit)
    except BudgetExceededError:
        for limit in taken:
            limit.release(estimate)
        raise
    return Ticket(limits, estimate)


def spend(response: Response) -> None:
    """Count a finished answer against the budget and the caps of this context (a cache hit
    counts nothing)."""
    if response.cached:
        return
    SESSION.get(Budget).add(response.cost)
    for cap in _CAPS.get():
        cap.add(response.cost)


# --- the user's view ------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetStatus:
    """``lm.budget()``: the limit (None: no budget), what this kernel spent, what is left,
    and how many answers had an unknown price."""

    limit: float | None
    spent: float
    remaining: float | None
    unknown: int

    def __str__(self) -> str:
        n = self.unknown
        unknown = f" + {n} call{'s' if n != 1 else ''} of unknown price" if n else ""
        if self.limit is None:
            return (
                f"No budget: this kernel spent {money(self.spent)}{unknown}. Set one with "
                "lm.budget(usd=5) or %llm budget 5."
            )
        return (
            f"Budget {money(self.limit)}: spent {money(self.spent)}{unknown}, "
            f"{money(self.remaining)} left."
        )

    def _repr_markdown_(self) -> str:
        return str(self)


class _Unset:
    def __repr__(self) -> str:
        return "<unchanged>"


_UNSET: Any = _Unset()


def budget(usd: float | str | None = _UNSET) -> BudgetStatus:
    """``lm.budget(usd=5.0)``: no call of this kernel may push its spend past 5 USD (counted
    from the kernel's start). ``lm.budget(None)`` or ``lm.budget("off")`` lifts it;
    ``lm.budget()`` only reports. A call that would go past it is refused before it is sent
    (:class:`~llm_magics.BudgetExceededError`); so is a DataFrame map whose estimate does."""
    limit = SESSION.get(Budget)
    if usd is not _UNSET:
        if usd is None or (isinstance(usd, str) and usd.strip().lower() in ("off", "none")):
            new = None
        elif isinstance(usd, str):
            raise ConfigError(f"lm.budget() takes an amount in US dollars or 'off'; got {usd!r}")
        else:
            new = check_usd(usd, "lm.budget(usd=...)")
        with limit.lock:
            limit.usd = new
    with limit.lock:
        return BudgetStatus(limit.usd, limit.spent, limit.remaining, limit.unknown)
