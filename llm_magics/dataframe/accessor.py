"""The ``df.llm`` and ``Series.llm`` accessor classes (documented in :mod:`llm_magics.dataframe`)."""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import pandas as pd

from .._chat.templates.template import Template as PromptTemplate
from .._client.pipeline import CacheMode
from .._core.errors import ConfigError, LLMError
from .._core.types import OutputSchema, Response
from .batch import deferrable
from .columns import Fields, assign, check_out, object_series, typed
from .labels import decision_schema, label_schema, match_label, parse_yes_no
from .plan import NaRule
from .run import (
    TEXT_ANSWER_TOKENS,
    ErrorMode,
    Estimate,
    Template,
    execute,
    per_row,
    resolve_client,
)
from .run import estimate as estimate_call

__all__ = ["DataFrameLLM", "Estimate", "SeriesLLM"]


# --- the accessors -------------------------------------------------------------------------


class DataFrameLLM:
    """``df.llm``: LLM calls over the rows of a DataFrame. See :mod:`llm_magics.dataframe.accessor`."""

    def __init__(self, obj: pd.DataFrame) -> None:
        self._obj = obj
        self._aliases: dict[str, Hashable] | None = None

    def _frame(self) -> pd.DataFrame:
        return self._obj

    @deferrable
    def map(
        self,
        template: Template,
        *,
        model: Any = None,
        out: Any = None,
        schema: Any = None,
        system: str | None = None,
        concurrency: int | None = None,
        cache: CacheMode = True,
        progress: Any = True,
        errors: ErrorMode = "column",
        images: Any = (),
        audio: Any = (),
        na: NaRule = "skip",
        temperature: float | None = None,
        max_tokens: int | None = None,
        columns: Mapping[str, Hashable] | None = None,
        mode: str = "online",
        max_cost: float | None = None,
        engine: str = "local",
        actors: int | None = None,
        **options: Any,
    ) -> pd.DataFrame:
        """Ask ``template`` (filled from each row) and return a new DataFrame with the answers.

        ``template``: a string with ``{column}`` placeholders, a function row -> prompt, or
        an ``lm.Template``, whose variables come from the columns of the same name, from
        ``columns={"variable": "column"}``, or from keywords of this call (one value for
        every row: ``language="French"``), else from its defaults.

        ``model``: a model id, alias, or ``lm.client(...)`` (default: the kernel's default).
        ``out``: the new column (default ``"llm"``); with ``schema``, see the module doc.
        ``cache=False`` asks again, ``"refresh"`` asks again and overwrites the cache.
        ``progress``: True (widget in a notebook, a stderr line elsewhere), False, 'text'.
        ``errors``: ``"column"`` (failed rows get ``<out>_error``) or ``"raise"``.
        ``images=`` / ``audio=``: columns whose values are appended to the prompt as media.
        ``na``: ``"skip"`` rows with a missing input, or render it ``"empty"``.
        ``mode="batch"``: one provider Batch API job (half price, answers within 24 h; see
        :mod:`llm_magics.dataframe.batch`); ``wait=False`` then returns the job's handle.
        ``max_cost``: the most this call may spend in USD: refused before sending when its
        estimate is higher, stopped (rows not sent say so in ``<out>_error``) when reached.
        ``engine="ray"``: the unique prompts are answered by ``actors`` Ray actors (default:
        the cluster's CPUs, 2 to 8), ``concurrency`` requests each, under one rate budget;
        the result is the same (see :mod:`llm_magics._batch.ray_engine`).
        Other keyword arguments (``seed=``, ``top_p=``, ...) go to the chat call.
        """
        frame = self._frame()
        index = frame.index
        options.update(temperature=temperature, max_tokens=max_tokens)
        if schema is not None:
            fields = Fields.of(schema, out)
            run = execute(
                frame, template, model=model, system=system, schema=fields.schema,
                concurrency=concurrency, cache=cache, progress=progress, errors=errors,
                images=images, audio=audio, na=na, aliases=self._aliases, options=options,
                convert=fields.to_dict, columns=columns, mode=mode, max_cost=max_cost,
                engine=engine, actors=actors,
            )  # fmt: skip
            values, errs = per_row(run)
            added = fields.columns(values, index)
            added[fields.error_column] = object_series(errs, index)
            return assign(frame, added)
        column = check_out(out, "llm")
        run = execute(
            frame, template, model=model, system=system, schema=None,
            concurrency=concurrency, cache=cache, progress=progress, errors=errors,
            images=images, audio=audio, na=na, aliases=self._aliases, options=options,
            columns=columns, mode=mode, max_cost=max_cost, engine=engine, actors=actors,
        )  # fmt: skip
        values, errs = per_row(run)
        return assign(
            frame,
            {column: object_series(values, index), f"{column}_error": object_series(errs, index)},
        )

    def extract(
        self, template: Template, schema: Any, *, out: Any = None, **kwargs: Any
    ) -> pd.DataFrame:
        """Structured extraction: one column per field of ``schema`` (pydantic model or JSON
        schema); same options as :meth:`map`."""
        if schema is None:
            raise ConfigError("extract() needs schema=: a pydantic model class or a JSON schema")
        return self.map(template, schema=schema, out=out, **kwargs)

    @deferrable
    def classify(
        self,
        template: Template,
        labels: Sequence[str],
        *,
        out: str = "label",
        system: str | None = None,
        constrain: bool | None = None,
        model: Any = None,
        temperature: float | None = 0,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> pd.DataFrame:
        """One label per row, from ``labels``, in column ``out`` (a category).

        Where the provider supports structured output (``constrain=None`` means: when it
        does), the answer is constrained to the labels with a JSON-schema enum; either way
        the answer is mapped onto a label by a forgiving matcher (case, punctuation, quotes,
        a label inside a sentence). A row whose answer matches no label, or matches several,
        gets no label and says so in ``<out>_error``.
        """
        labels = _check_labels(labels)
        out = check_out(out, "label")
        instruction = (
            "Classify the input into exactly one of these labels: "
            + ", ".join(labels)
            + ". Answer with the label only."
        )
        schema = label_schema(labels) if _constrain(constrain, model) else None
        if isinstance(template, PromptTemplate) and "labels" in template.variables:
            kwargs.setdefault("labels", ", ".join(labels))  # lm.templates.classification

        def convert(response: Response) -> str:
            parsed = response.parsed
            if isinstance(parsed, Mapping) and isinstance(parsed.get("label"), str):
                return match_label(parsed["label"], labels)
            return match_label(response.text, labels)

        frame = self._frame()
        run = execute(
            frame, template, model=model, system=_join_system(system, instruction),
            schema=schema, convert=convert, recover=lambda r: match_label(r.text, labels),
            aliases=self._aliases, options={"temperature": temperature, "max_tokens": max_tokens,
                                            **_run_options(kwargs)},
            **_engine_kwargs(kwargs),
        )  # fmt: skip
        values, errs = per_row(run)
        index = frame.index
        return assign(
            frame,
            {
                out: typed(values, index, pd.CategoricalDtype(list(labels))),
                f"{out}_error": object_series(errs, index),
            },
        )

    @deferrable
    def filter(
        self,
        condition: Template,
        *,
        out: str = "llm",
        undecided: Literal["keep", "drop", "raise"] = "keep",
        **kwargs: Any,
    ) -> pd.DataFrame:
        """The rows for which the model answers yes to ``condition`` (a question or a
        statement about the row, e.g. ``"Is {review} about food?"``).

        Answers are read forgivingly (yes/no/true/false, any case, with punctuation, quotes or
        a short explanation). Undecided rows (failed request, unreadable answer, missing
        input) are kept with the reason in ``<out>_error`` and a warning, unless
        ``undecided="drop"`` (dropped) or ``"raise"`` (an LLMError listing them). Options as
        for :meth:`classify` (``system=``, ``constrain=``, ``model=``, ...).
        """
        out = check_out(out, "llm")
        frame = self._frame()
        keep, errs = self._decide(condition, out, undecided, **kwargs)
        rows = [i for i, k in enumerate(keep) if k]
        if any(errs[i] is not None for i in rows):
            frame = assign(frame, {f"{out}_error": object_series(errs, frame.index)})
        return frame.iloc[rows].copy()

    def _decide(
        self,
        condition: Template,
        out: str,
        undecided: str,
        *,
        system: str | None = None,
        constrain: bool | None = None,
        model: Any = None,
        temperature: float | None = 0,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> tuple[list[bool], list[str | None]]:
        """Per row: keep it or not, and why not decided."""
        if undecided not in ("keep", "drop", "raise"):
            raise ConfigError(f"undecided= takes 'keep', 'drop' or 'raise'; got {undecided!r}")
        schema = decision_schema() if _constrain(constrain, model) else None
        frame = self._frame()
        run = execute(
            frame, condition, model=model, system=_join_system(system, _DECIDE_INSTRUCTION),
            schema=schema, convert=_read_decision, recover=lambda r: parse_yes_no(r.text),
            aliases=self._aliases, options={"temperature": temperature, "max_tokens": max_tokens,
                                            **_run_options(kwargs)},
            label="llm filter", **_engine_kwargs(kwargs),
        )  # fmt: skip
        values, errs = per_row(run)
        return _settle_undecided(frame.index, values, errs, out, undecided), errs

    def estimate(
        self,
        template: Template,
        *,
        model: Any = None,
        schema: Any = None,
        system: str | None = None,
        cache: CacheMode = True,
        images: Any = (),
        audio: Any = (),
        na: NaRule = "skip",
        temperature: float | None = None,
        max_tokens: int | None = None,
        answer_tokens: int | None = None,
        columns: Mapping[str, Hashable] | None = None,
        mode: str = "online",
        **options: Any,
    ) -> Estimate:
        """Calls, unique prompts, cached answers, tokens and USD of ``map(template, ...)``,
        without sending anything. ``answer_tokens`` overrides the guessed output length per
        call (default: 150 for text, 15 per schema field); ``mode="batch"`` prices the calls
        as one provider Batch API job."""
        if answer_tokens is None:
            answer_tokens = TEXT_ANSWER_TOKENS
            if schema is not None:
                props = OutputSchema.from_user(schema).json_schema.get("properties") or {}
                answer_tokens = 10 + 15 * max(1, len(props))
        options.update(temperature=temperature, max_tokens=max_tokens)
        return estimate_call(
            self._frame(), template, model=model, system=system, schema=schema, cache=cache,
            images=images, audio=audio, na=na, aliases=self._aliases, options=options,
            answer_tokens=answer_tokens, columns=columns, mode=mode,
        )  # fmt: skip


_DECIDE_INSTRUCTION = (
    "Answer the user's question about the input with one word: yes or no. If the user "
    "states a condition, answer yes if it holds for the input and no if it does not."
)


def _read_decision(response: Response) -> bool:
    parsed = response.parsed
    if isinstance(parsed, Mapping) and "answer" in parsed:
        return parse_yes_no(str(parsed["answer"]))
    return parse_yes_no(response.text)


def _settle_undecided(
    index: pd.Index, values: list[Any], errs: list[str | None], out: str, undecided: str
) -> list[bool]:
    """Per row: keep it or not, with the undecided rows (value None) kept, dropped or
    raised as ``undecided`` says."""
    keep = [v is True for v in values]
    unclear = [i for i, v in enumerate(values) if v is None]
    if unclear and undecided == "raise":
        first = "; ".join(f"row {index[i]!r}: {errs[i]}" for i in unclear[:3])
        raise LLMError(
            f"filter could not decide {len(unclear)} row(s): {first}. Finished answers are "
            "cached; undecided='keep' keeps such rows with the reason in a column."
        )
    if unclear and undecided == "keep":
        for i in unclear:
            keep[i] = True
        warnings.warn(
            f"llm filter kept {len(unclear)} row(s) it could not decide; see the "
            f"{out}_error column (undecided='drop' drops them)",
            UserWarning,
            stacklevel=5,  # past this helper, _decide, filter and its wrapper: the caller's line
        )
    return keep


_ENGINE_KEYS = (
    "concurrency", "cache", "progress", "errors", "images", "audio", "na", "columns", "mode",
    "max_cost", "engine", "actors",
)  # fmt: skip


def _engine_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    defaults = {"concurrency": None, "cache": True, "progress": True, "errors": "column",
                "images": (), "audio": (), "na": "skip", "columns": None, "mode": "online",
                "max_cost": None, "engine": "local", "actors": None}  # fmt: skip
    return {k: kwargs.get(k, defaults[k]) for k in _ENGINE_KEYS}


def _run_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    if "schema" in kwargs:
        raise ConfigError("classify() and filter() choose their own schema; use map(schema=)")
    return {k: v for k, v in kwargs.items() if k not in _ENGINE_KEYS}


def _join_system(user: str | None, instruction: str) -> str:
    return f"{user}\n\n{instruction}" if user else instruction


def _constrain(constrain: bool | None, model: Any) -> bool:
    if constrain is not None:
        return bool(constrain)
    try:
        return bool(resolve_client(model).provider.supports_schema)
    except LLMError:
        return False  # the run itself will report what is wrong with the model


def _check_labels(labels: Any) -> list[str]:
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise ConfigError("labels= takes a list of strings, e.g. labels=['positive', 'negative']")
    found = list(labels)
    if len(found) < 2 or not all(isinstance(x, str) and x.strip() for x in found):
        raise ConfigError(f"labels= needs at least two non-empty strings; got {found!r}")
    folded = [x.strip().casefold() for x in found]
    if len(set(folded)) != len(folded):
        raise ConfigError(f"labels= has duplicates (ignoring case): {found!r}")
    return [x.strip() for x in found]


class SeriesLLM(DataFrameLLM):
    """``s.llm``: like ``df.llm`` on the one-column frame of this Series. In templates the
    value is ``{value}`` (and ``{<name>}`` when the Series has a name); a template with no
    placeholder gets the value appended after a blank line: ``s.llm.map("Translate to
    French")``; an ``lm.Template``'s main variable is the value. Results are DataFrames (the Series as a column plus the new columns), except
    :meth:`filter`, which returns the kept part of the Series."""

    def __init__(self, obj: pd.Series) -> None:
        name = obj.name if obj.name is not None else "value"
        super().__init__(obj.to_frame(name=name))
        self._series = obj
        self._aliases = {"value": name}

    def _with_value(self, template: Template) -> Template:
        if callable(template) or not isinstance(template, str):
            return template
        from .template import RowTemplate

        compiled = RowTemplate(template, list(self._obj.columns), aliases=self._aliases)
        return template if compiled.has_fields else template.rstrip() + "\n\n{value}"

    def map(self, template: Template, **kwargs: Any) -> pd.DataFrame:
        return super().map(self._with_value(template), **kwargs)

    def classify(self, template: Template, labels: Sequence[str], **kwargs: Any) -> pd.DataFrame:
        return super().classify(self._with_value(template), labels, **kwargs)

    def extract(self, template: Template, schema: Any, **kwargs: Any) -> pd.DataFrame:
        return super().extract(self._with_value(template), schema, **kwargs)

    def estimate(self, template: Template, **kwargs: Any) -> Estimate:
        return super().estimate(self._with_value(template), **kwargs)

    @deferrable
    def filter(
        self,
        condition: Template,
        *,
        out: str = "llm",
        undecided: Literal["keep", "drop", "raise"] = "keep",
        **kwargs: Any,
    ) -> pd.Series:
        keep, _ = self._decide(self._with_value(condition), out, undecided, **kwargs)
        return self._series.iloc[[i for i, k in enumerate(keep) if k]].copy()
