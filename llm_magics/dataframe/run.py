"""Running one ``df.llm`` call: which client, which progress display, the plan through the
engine, the answers back per row; and estimates, which run nothing.

Thread safety: every function here is called from the thread that called the accessor; the
engine itself runs on the package's loop thread.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from .._batch.fanout import (
    DEFAULT_CONCURRENCY,
    BatchResult,
    BatchStats,
    Progress,
    TextProgress,
    run_batch,
)
from .._chat.templates.template import Template as PromptTemplate
from .._client.pipeline import CacheMode
from .._client.prompt_cache import prompt_cache_for
from .._core.errors import ConfigError
from .._core.fmt import markdown_table, money
from .._core.types import Response
from .._runtime import loop as _loop
from .batch import run_in_batch
from .costs import TEXT_ANSWER_TOKENS, check_limits, count_calls, prices
from .plan import NaRule, Plan, build_plan
from .template import materialize
from .templated import TemplateRows, bind_template

__all__ = [
    "TEXT_ANSWER_TOKENS",
    "Estimate",
    "estimate",
    "execute",
    "per_row",
    "resolve_client",
]

#: A row template: a string with {column} placeholders, a function row -> prompt, or an
#: lm.Template (see :mod:`llm_magics.dataframe.templated`).
Template = str | Callable[[Any], Any] | PromptTemplate
ErrorMode = Literal["column", "raise"]

# --- running ---------------------------------------------------------------------------------


def resolve_client(model: Any) -> Any:
    from .._client.client import Client

    if isinstance(model, Client):
        return model
    if model is not None and not isinstance(model, str):
        raise ConfigError(
            f"model= takes a model id such as 'openai:gpt-4o-mini' or 'local', or an "
            f"lm.client(...); got {type(model).__name__}"
        )
    from .._client import registry

    return registry.current_registry().client(model)


def _in_notebook() -> bool:
    """A Jupyter kernel with a frontend, without importing IPython when it is not loaded."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def _progress(progress: Any, label: str) -> Progress | None:
    if progress is False or progress is None:
        return None
    if hasattr(progress, "update") and hasattr(progress, "close"):
        return progress
    if progress not in (True, "text", "widget"):
        raise ConfigError(f"progress= takes True, False, 'text' or 'widget'; got {progress!r}")
    if progress == "widget" or (progress is True and _in_notebook()):
        try:
            from ..notebook.widgets import ProgressWidget

            return ProgressWidget(label)
        except ImportError:
            if progress == "widget":
                raise ConfigError(
                    "progress='widget' needs ipywidgets: pip install ipywidgets"
                ) from None
    return TextProgress(label=label)


@dataclass
class _Run:
    plan: Plan
    result: BatchResult | None


def execute(
    frame: pd.DataFrame,
    template: Template,
    *,
    model: Any,
    system: str | None,
    schema: Any,
    concurrency: int | None,
    cache: CacheMode,
    progress: Any,
    errors: ErrorMode,
    images: Any,
    audio: Any,
    na: NaRule,
    aliases: Mapping[str, Hashable] | None,
    options: dict[str, Any],
    convert: Callable[[Response], Any] = lambda r: r.text,
    recover: Callable[[Response], Any] | None = None,
    label: str = "llm",
    columns: Mapping[str, Hashable] | None = None,
    mode: str = "online",
    max_cost: float | None = None,
    engine: str = "local",
    actors: int | None = None,
) -> _Run:
    _check_engine(engine, mode)
    if errors not in ("column", "raise"):
        raise ConfigError(f"errors= takes 'column' or 'raise'; got {errors!r}")
    if mode not in ("online", "batch"):
        raise ConfigError(
            f"mode= takes 'online' or 'batch' (a provider Batch API job); got {mode!r}"
        )
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        raise ConfigError(f"concurrency= must be a whole number >= 1; got {concurrency!r}")
    rows, system, aliases = _bind(frame, template, system, options, columns, aliases)
    plan = build_plan(frame, rows, aliases=aliases, images=images, audio=audio, na=na)
    if errors == "raise":
        for reason in plan.skipped.values():
            if not reason.startswith("skipped:"):
                raise ConfigError(f"a row's prompt could not be built: {reason}")
    if not plan.prompts:
        return _Run(plan, None)
    client = resolve_client(model)
    opts = _chat_options(options, system, schema)
    check_limits(client, plan, opts, cache, max_cost=max_cost, batch=mode == "batch")
    hint = prompt_cache_for(client, plan.prompts, opts)  # the rows' shared prefix, named
    if hint is not None:
        opts["prompt_cache"] = hint
    width = concurrency or getattr(client.provider, "max_concurrency", None) or DEFAULT_CONCURRENCY
    stats = BatchStats(total=len(plan.row_job), skipped=len(plan.skipped), model=client.model_id)
    stats.done = stats.skipped
    stats.errors = sum(1 for r in plan.skipped.values() if not r.startswith("skipped:"))
    parts: dict[str, Any] = {
        "rows": plan.weights, "materialize": materialize, "convert": convert,
        "recover": recover, "cache": cache, "errors": errors,
        "progress": _progress(progress, label), "stats": stats, "options": opts,
    }  # fmt: skip
    return _Run(plan, _dispatch(client, plan.prompts, mode, engine, width, actors, max_cost,
                                parts))  # fmt: skip


def _dispatch(
    client: Any,
    prompts: list[Any],
    mode: str,
    engine: str,
    width: int,
    actors: int | None,
    max_cost: float | None,
    parts: dict[str, Any],
) -> BatchResult:
    """The unique prompts answered by the engine the call chose."""
    if mode == "batch":
        return run_in_batch(client, prompts, **parts)
    if engine == "ray":
        from .._batch.ray_engine import run_on_ray

        return run_on_ray(client, prompts, concurrency=width, actors=actors,
                          max_cost=max_cost, **parts)  # fmt: skip
    return _loop.run(run_batch(client, prompts, concurrency=width, max_cost=max_cost, **parts))


def _check_engine(engine: str, mode: str) -> None:
    if engine not in ("local", "ray"):
        raise ConfigError(
            f"engine= takes 'local' (this kernel) or 'ray' (Ray Data actors); got {engine!r}"
        )
    if engine == "ray" and mode == "batch":
        raise ConfigError(
            "mode='batch' hands the rows to the provider's Batch API, which needs no Ray "
            "workers: use engine='local' with it"
        )


def _bind(
    frame: pd.DataFrame,
    template: Template,
    system: str | None,
    options: dict[str, Any],
    columns: Mapping[str, Hashable] | None,
    aliases: Mapping[str, Hashable] | None,
) -> tuple[str | Callable[[Any], Any] | TemplateRows, str | None, Mapping[str, Hashable] | None]:
    """An lm.Template bound to the frame (its variable keywords taken out of ``options``),
    with its system prompt after the call's ``system=``; other templates as they are."""
    if not isinstance(template, PromptTemplate):
        if columns is not None:
            raise ConfigError(
                "columns= maps the variables of an lm.Template to columns; with a string "
                "template, write the column names in its {placeholders}"
            )
        return template, system, aliases
    bound = bind_template(frame, template, options, columns=columns, aliases=aliases)
    if bound.system:
        system = f"{system}\n\n{bound.system}" if system else bound.system
    return bound.rows, system, None


def _chat_options(options: dict[str, Any], system: str | None, schema: Any) -> dict[str, Any]:
    """The options of each chat call: those given (None means not given), system, schema."""
    opts = {k: v for k, v in options.items() if v is not None}
    if system is not None:
        opts["system"] = system
    if schema is not None:
        opts["schema"] = schema
    return opts


def per_row(run: _Run) -> tuple[list[Any], list[str | None]]:
    values: list[Any] = []
    errors: list[str | None] = []
    result = run.result
    for r, job in enumerate(run.plan.row_job):
        if job < 0 or result is None:
            values.append(None)
            errors.append(run.plan.skipped.get(r))
        else:
            values.append(result.values[job])
            errors.append(result.errors[job])
    return values, errors


# --- estimates -----------------------------------------------------------------------------


@dataclass
class Estimate:
    """What a call would do, computed without sending anything.

    ``calls`` = unique prompts not already in the response cache (what would be sent and
    paid for); tokens and ``usd`` are for those calls. Input tokens are counted (tiktoken for
    OpenAI models when installed, else an approximation that errs high); output tokens are a
    guess unless bounded by ``max_tokens`` (then ``usd_max`` is the most it can cost).
    ``usd`` is None when the model's price is unknown (see ``lm.set_price``)."""

    model: str
    rows: int
    skipped: int
    unique_prompts: int
    cached: int
    calls: int
    input_tokens: int
    output_tokens: int
    usd: float | None
    usd_max: float | None = None
    #: ``"batch"``: priced as one provider Batch API job (``mode="batch"``).
    mode: str = "online"

    def _lines(self) -> list[tuple[str, str]]:
        usd = (
            "unknown (no price for this model; lm.set_price(...))"
            if self.usd is None
            else money(self.usd)
        )
        if self.usd_max is not None:
            usd += f" (at most {money(self.usd_max)} with max_tokens)"
        if self.mode == "batch" and self.usd is not None:
            usd += " at the batch price"
        return [
            ("model", self.model),
            ("rows", f"{self.rows:,} ({self.skipped:,} skipped for missing input)"),
            ("unique prompts", f"{self.unique_prompts:,}"),
            ("already cached", f"{self.cached:,}"),
            ("calls to send", f"{self.calls:,}"),
            ("input tokens", f"~{self.input_tokens:,}"),
            ("output tokens", f"~{self.output_tokens:,} (a guess)"),
            ("cost", usd),
        ]

    def __str__(self) -> str:
        return "\n".join(f"{k:>15}: {v}" for k, v in self._lines())

    def _repr_markdown_(self) -> str:
        return markdown_table(["estimate", ""], self._lines())


def estimate(
    frame: pd.DataFrame,
    template: Template,
    *,
    model: Any,
    system: str | None,
    schema: Any,
    cache: CacheMode,
    images: Any,
    audio: Any,
    na: NaRule,
    aliases: Mapping[str, Hashable] | None,
    options: dict[str, Any],
    answer_tokens: int,
    columns: Mapping[str, Hashable] | None = None,
    mode: str = "online",
) -> Estimate:
    rows, system, aliases = _bind(frame, template, system, options, columns, aliases)
    plan = build_plan(frame, rows, aliases=aliases, images=images, audio=audio, na=na)
    client = _estimate_client(model)
    opts = _chat_options(options, system, schema)
    max_tokens = opts.get("max_tokens")
    per_call = min(answer_tokens, max_tokens) if max_tokens else answer_tokens
    cached, calls, input_tokens = count_calls(client, plan, opts, cache)
    output_tokens = calls * per_call
    usd, usd_max = prices(
        client, input_tokens, output_tokens, calls, max_tokens, batch=mode == "batch"
    )
    return Estimate(
        model=client.model_id,
        rows=len(frame),
        skipped=sum(1 for r in plan.skipped.values() if r.startswith("skipped:")),
        unique_prompts=len(plan.prompts),
        cached=cached,
        calls=calls,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        usd=usd,
        usd_max=usd_max,
        mode=mode,
    )


def _estimate_client(model: Any) -> Any:
    """The client of ``model``; no key is needed to estimate, so none is checked."""
    from .._client import registry
    from .._client.client import Client

    if isinstance(model, Client):
        return model
    reg = registry.current_registry()
    ref = reg.resolve(model)
    return Client(reg.provider(ref.provider), ref.model, cache=reg.cache)
