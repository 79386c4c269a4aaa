"""Planning a ``df.llm`` call: every row rendered with its template
(:mod:`llm_magics.dataframe.template`), rows with missing input skipped, and the prompts
deduplicated into the unique ones the engine sends (:class:`Plan`).

Missing values (None, NaN, NaT, pd.NA) follow ``na=``:

* ``"skip"`` (default): a row with a missing value in any column its prompt uses is not sent;
  its output stays empty and its error column says ``skipped: missing input 'col'``. Prompts
  with "nan" in them are never what anyone wanted, and they cost money.
* ``"empty"``: missing text becomes ``""`` and a missing image or audio value is left out; only
  a row where every referenced value is missing is skipped.

A callable template gets the row (a pandas Series) and returns the prompt: a string, or a list
of strings and media. Returning None skips the row.

The dedup key of a row is its prompt: a string, or a tuple of strings and
:class:`~llm_magics.dataframe.template.MediaRef` when media are involved, so identical media
are recognised without loading them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._core.errors import ConfigError
from .._core.types import MediaKind, MediaPart
from .template import MediaRef, RowTemplate, SystemPrompt, join, unknown_column_message
from .templated import TemplateRows

__all__ = ["NaRule", "Plan", "build_plan"]

NaRule = Literal["skip", "empty"]


@dataclass
class Plan:
    """Which unique prompt each row uses (``row_job[r]``, -1 when skipped, with the reason in
    ``skipped[r]``), and the unique prompts with how many rows share each."""

    prompts: list[Any]
    weights: list[int]
    row_job: list[int]
    skipped: dict[int, str]


def build_plan(
    frame: Any,
    template: str | Callable[[Any], Any] | TemplateRows,
    *,
    aliases: Mapping[str, Hashable] | None = None,
    images: Sequence[Hashable] = (),
    audio: Sequence[Hashable] = (),
    na: NaRule = "skip",
    require_fields: bool = True,
) -> Plan:
    """Render every row of ``frame`` and deduplicate the prompts."""
    _check_frame(frame, na)
    media_cols = _media_columns(frame, images, audio)
    # Appended media columns alone make the rows' prompts differ.
    compiled = _compile(frame, template, aliases, require_fields and not media_cols)
    used = list(compiled.columns if compiled is not None else []) + [c for c, _ in media_cols]
    used = list(dict.fromkeys(used))
    return _plan_rows(frame, template, compiled, media_cols, used, na)


def _check_frame(frame: Any, na: NaRule) -> None:
    if na not in ("skip", "empty"):
        raise ConfigError(f"na= must be 'skip' or 'empty'; got {na!r}")
    if not frame.columns.is_unique:
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise ConfigError(
            f"the DataFrame has duplicate column names ({', '.join(dupes)}); rename them first"
        )


def _media_columns(
    frame: Any, images: Sequence[Hashable], audio: Sequence[Hashable]
) -> list[tuple[Hashable, MediaKind]]:
    """The ``images=`` and ``audio=`` columns with their kind, each checked to exist."""
    media_cols: list[tuple[Hashable, MediaKind]] = []
    for kind, cols in (("image", images), ("audio", audio)):
        for col in [cols] if isinstance(cols, str) else cols:
            if col not in frame.columns:
                raise ConfigError(
                    unknown_column_message(str(col), str(col), list(frame.columns)).replace(
                        "in the template", f"in {kind if kind == 'audio' else 'images'}="
                    )
                )
            media_cols.append((col, kind))  # type: ignore[arg-type]
    return media_cols


def _compile(
    frame: Any,
    template: str | Callable[[Any], Any] | TemplateRows,
    aliases: Mapping[str, Hashable] | None,
    require_fields: bool,
) -> RowTemplate | TemplateRows | None:
    """The compiled string template (or the bound lm.Template), or None for a callable one."""
    if isinstance(template, TemplateRows):
        if require_fields and not template.has_fields:
            raise ConfigError(template.no_column_message(list(frame.columns)))
        return template
    if callable(template):
        return None
    if not isinstance(template, str):
        raise ConfigError(
            f"the template must be a string with {{column}} placeholders or a function "
            f"row -> prompt; got {type(template).__name__}"
        )
    compiled = RowTemplate(template, list(frame.columns), aliases=aliases)
    if require_fields and not compiled.has_fields:
        raise ConfigError(
            f"the template {template[:80]!r} uses no column, so every row would get the same "
            f"answer. Put column names in braces, e.g. {{{frame.columns[0] if len(frame.columns) else 'text'}}}."
        )
    return compiled


def _plan_rows(
    frame: Any,
    template: str | Callable[[Any], Any] | TemplateRows,
    compiled: RowTemplate | TemplateRows | None,
    media_cols: list[tuple[Hashable, MediaKind]],
    used: list[Hashable],
    na: NaRule,
) -> Plan:
    """Each row's prompt (or why it is skipped), deduplicated. Column values are read once
    per column, not per row; a callable template gets each row as a Series."""
    data = {c: frame[c].tolist() for c in used}
    isna = {c: frame[c].isna().to_numpy() for c in used}
    key_of: dict[Any, int] = {}
    prompts: list[Any] = []
    weights: list[int] = []
    row_job: list[int] = []
    skipped: dict[int, str] = {}
    rows = frame.iterrows() if compiled is None else None
    for r in range(len(frame)):
        missing = {c for c in used if isna[c][r]}
        if missing and (na == "skip" or len(missing) == len(used)):
            names = ", ".join(repr(str(c)) for c in used if c in missing)
            skipped[r] = f"skipped: missing input {names}"
            row_job.append(-1)
            if rows is not None:
                next(rows)
            continue
        try:
            if compiled is not None:
                prompt = compiled.render({c: data[c][r] for c in used}, missing)
            else:
                assert rows is not None
                prompt = _from_callable(template, next(rows)[1])  # type: ignore[arg-type]
                if prompt is None:
                    skipped[r] = "skipped: the template function returned None"
                    row_job.append(-1)
                    continue
            extra = [MediaRef.of(kind, data[c][r]) for c, kind in media_cols if c not in missing]
            if extra:
                prompt = join([*(prompt if isinstance(prompt, tuple) else [prompt]), *extra])
            key = _key(prompt)
        except ValueError as exc:  # a value the template cannot format: that row only
            skipped[r] = f"{type(exc).__name__}: {exc}"
            row_job.append(-1)
            continue
        job = key_of.get(key)
        if job is None:
            job = key_of[key] = len(prompts)
            prompts.append(prompt)
            weights.append(0)
        weights[job] += 1
        row_job.append(job)
    return Plan(prompts, weights, row_job, skipped)


def _from_callable(fn: Callable[[Any], Any], row: Any) -> Any:
    prompt = fn(row)
    if prompt is None or isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list | tuple):
        return tuple(prompt)
    raise ConfigError(
        f"the template function must return a string, a list of strings and media, or None "
        f"(to skip the row); it returned a {type(prompt).__name__}"
    )


def _key(prompt: Any) -> Hashable:
    if isinstance(prompt, str):
        return prompt
    key: list[Hashable] = []
    for item in prompt:
        if isinstance(item, str | MediaRef | SystemPrompt):
            key.append(item)
        elif isinstance(item, MediaPart):
            key.append(("h", item.content_hash))
        elif isinstance(item, Mapping):
            key.append(json.dumps(item, sort_keys=True, default=str))
        else:
            key.append(("id", id(item)))
    return tuple(key)
