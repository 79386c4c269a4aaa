"""What a ``df.llm`` call would cost, and the refusal of one that would pass a limit.

:func:`count_calls` asks the response cache which unique prompts are answered already and
counts the input tokens of the others; :func:`prices` turns tokens into USD at the model's
online or batch price. :func:`check_limits` runs before a call sends anything: when the
kernel has a budget (``lm.budget``) or the call a ``max_cost=``, a call whose estimate does not
fit what is left, or whose price is unknown, is refused with the estimate and how to raise
the limit (:class:`~llm_magics.BudgetExceededError`); nothing has been sent then.

Thread safety: called from the thread that called the accessor.
"""

from __future__ import annotations

import math
from typing import Any

from .._client.budget import Budget, check_usd
from .._client.pipeline import CacheMode
from .._core.errors import BudgetExceededError
from .._core.fmt import money
from .._core.schema import OutputSchema
from .._core.session import SESSION
from .._core.types import Usage
from .plan import Plan
from .template import materialize

__all__ = ["TEXT_ANSWER_TOKENS", "answer_tokens", "check_limits", "count_calls", "prices"]

#: Output tokens assumed per free-text answer when max_tokens is not given: a guess.
TEXT_ANSWER_TOKENS = 150


def answer_tokens(schema: Any) -> int:
    """The guessed output length of one answer: 150 for text, 15 per schema field."""
    if schema is None:
        return TEXT_ANSWER_TOKENS
    props = OutputSchema.from_user(schema).json_schema.get("properties") or {}
    return 10 + 15 * max(1, len(props))


def count_calls(
    client: Any, plan: Plan, opts: dict[str, Any], cache: CacheMode
) -> tuple[int, int, int]:
    """Of the plan's prompts: how many are cached, how many would be sent, and the input
    tokens of those sent (without the max_tokens reserve the key pool's estimate adds)."""
    from .._client.usage import estimate_request_tokens

    cached = calls = input_tokens = 0
    store = client.cache if cache is True else None
    for prompt in plan.prompts:
        request = client.build_request(materialize(prompt), **opts)
        if store is not None and store.get(store.key_for(client.provider, request)) is not None:
            cached += 1
            continue
        calls += 1
        input_tokens += estimate_request_tokens(request, exact=True) - (request.max_tokens or 0)
    return cached, calls, input_tokens


def prices(
    client: Any,
    input_tokens: int,
    output_tokens: int,
    calls: int,
    max_tokens: int | None,
    *,
    batch: bool = False,
) -> tuple[float | None, float | None]:
    """USD of the calls, and at most with ``max_tokens``; None when not known. ``batch``: at
    the price of a provider Batch API job."""
    from .._client.pricing import profile_for

    profile = profile_for(client.provider.name, client.model)
    usd = usd_max = None
    if profile is not None and profile.priced:
        usd = profile.cost(Usage(input_tokens, output_tokens), batch=batch) if calls else 0.0
        if max_tokens:
            most = Usage(input_tokens, calls * max_tokens)
            usd_max = profile.cost(most, batch=batch) if calls else 0.0
    return usd, usd_max


def check_limits(
    client: Any,
    plan: Plan,
    opts: dict[str, Any],
    cache: CacheMode,
    *,
    max_cost: float | None,
    batch: bool,
) -> None:
    """Refuse the call before anything is sent when its estimate does not fit the kernel's
    budget or ``max_cost``, or its price is unknown while either is set."""
    if max_cost is not None:
        max_cost = check_usd(max_cost, "max_cost=")
    budget = SESSION.get(Budget)
    left = budget.remaining
    if left is None and max_cost is None:
        return
    _, calls, input_tokens = count_calls(client, plan, opts, cache)
    if not calls:
        return
    per_call = answer_tokens(opts.get("schema"))
    if opts.get("max_tokens"):
        per_call = min(per_call, opts["max_tokens"])
    usd, _ = prices(client, input_tokens, calls * per_call, calls, None, batch=batch)
    what = f"{calls:,} call{'s' if calls != 1 else ''} to {client.model_id}" + (
        " at the batch price" if batch else ""
    )
    limits: list[tuple[float, str, str]] = []
    if left is not None:
        limits.append(
            (left, "the kernel's budget", f"has {money(left)} left{budget.unknown_text()}")
        )
    if max_cost is not None:
        limits.append((max_cost, "max_cost=", f"is {money(max_cost)}"))
    for room, name, state in limits:
        if usd is None:
            raise BudgetExceededError(
                f"nothing was sent: the cost of {what} is unknown (no price for "
                f"{client.model_id}), so {name} cannot be kept. Give the model a price with "
                f"lm.set_price({client.model_id!r}, input=..., output=...) or {_lift(name)}.",
                limit=room,
                spent=budget.spent,
            )
        if usd > room:
            raise BudgetExceededError(
                f"nothing was sent: {what} would cost about {money(usd)}, but {name} "
                f"{state}. {_raise(name, budget, usd)}",
                limit=room,
                spent=budget.spent,
                estimate=usd,
            )


def _lift(name: str) -> str:
    return "drop max_cost=" if name == "max_cost=" else "lift the budget with lm.budget(None)"


def _cents_up(usd: float) -> str:
    return f"{math.ceil(usd * 100 - 1e-9) / 100:.2f}"


def _raise(name: str, budget: Budget, usd: float) -> str:
    if name == "max_cost=":
        return f"Pass max_cost={_cents_up(usd)} or more to run it."
    need = _cents_up(budget.spent + budget.reserved + usd)
    return (
        f"Raise the budget to at least ${need} (lm.budget(usd={need}) or %llm budget {need}) "
        "to run it; df.llm.estimate(...) shows the estimate."
    )
