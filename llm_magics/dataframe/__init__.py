"""``df.llm`` and ``Series.llm``: map a prompt over every row, concurrently, cached row by row.

    df = df.llm.map("Summarise in one line: {review}", out="summary")
    df = df.llm.classify("Sentiment of: {review}", labels=["positive", "negative"])
    df = df.llm.extract("{bio}", schema=Person)          # one column per field
    hits = df.llm.filter("Is {review} about food?")
    df.llm.estimate("Summarise: {review}")               # calls, tokens, USD; sends nothing

Templates: ``{column}`` placeholders, filled once per row with the same safe rules as
``%%llm`` (see :mod:`llm_magics.dataframe.template` for braces and ``{photo:image}`` media, and
:mod:`llm_magics.dataframe.plan` for the ``na=`` rule for missing values), a function
``row -> prompt``, or an ``lm.Template`` whose variables come from the columns of the same
name, ``columns={"variable": "column"}``, keywords of the call or its defaults
(:mod:`llm_magics.dataframe.templated`)::

    df.llm.map(lm.templates.translate.with_defaults(language="French"))   # {text} per row

Outputs (every method returns a new DataFrame; index, order and input columns unchanged;
an output column that already exists is replaced, like :meth:`DataFrame.assign`):

* ``map``: the answer text in column ``out`` (default ``"llm"``).
* ``schema=`` (pydantic model or JSON schema), and ``extract``: one column per field of the
  schema, typed where the schema says (integer -> ``Int64``, number -> ``float64``, boolean ->
  ``boolean``, string enum -> ``category``; otherwise objects). Columns are named by the
  fields themselves, or ``<out>_<field>`` when ``out`` is given, or by ``out`` as a
  ``{field: column}`` mapping.
* ``classify``: the label in ``out`` (default ``"label"``) as a ``category`` of ``labels``.
* Always one more column, ``<out>_error`` (``llm_error`` when fields are named by the schema):
  None where the row succeeded, else why not: the error after all retries (``errors="raise"``
  raises it instead), ``skipped: missing input 'col'``, or an answer that did not parse. A row
  never ends up with an empty output and no reason.

``filter`` keeps the rows the model answers yes to. A row it could not decide (the request
failed, the answer was neither yes nor no, or its input was missing) is kept, never silently
dropped, and the result then has a ``<out>_error`` column saying why (plus a warning); pass
``undecided="drop"`` to drop them or ``"raise"`` to get an error instead.

On a Ray cluster: ``engine="ray"`` (:mod:`llm_magics._batch.ray_engine`) gives the same
result from Ray Data actors under one rate budget, and ``lm.ray.map(dataset, template)``
(:mod:`llm_magics.dataframe.ray_dataset`) maps a ``ray.data.Dataset``.

Engine (:mod:`llm_magics._batch.fanout`): identical prompts are sent once, ``concurrency`` at a time
(default 16, or the provider's ``max_concurrency``), each answer is cached as it arrives (so an
interrupted run resumes where it stopped), with the client's retries and key rotation.
Progress shows as a widget in a notebook and as a line on stderr elsewhere.

Cost at scale: ``mode="batch"`` sends the uncached unique prompts as provider Batch API jobs
at half price (:mod:`llm_magics.dataframe.batch`; ``wait=False`` returns the job's handle);
the rows' shared prefix (system prompt, schema, the template's leading text) goes first and
byte-identical, with OpenAI's ``prompt_cache_key`` and Anthropic's ``cache_control`` where
worth it (:mod:`llm_magics._client.prompt_cache`); ``max_cost=`` and the kernel's
``lm.budget(usd=...)`` refuse a call whose estimate does not fit before anything is sent, and
stop a running one when the spend reaches them (:mod:`llm_magics.dataframe.costs`).

Thread safety: an accessor call blocks its thread until the run is done; several threads may
run calls at once (each run is independent on the package's loop thread).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .hook import install as register

if TYPE_CHECKING:
    from .accessor import DataFrameLLM, Estimate, SeriesLLM

__all__ = ["DataFrameLLM", "Estimate", "SeriesLLM", "register"]

# pandas loads only when an accessor class is first asked for.
_LAZY = {"DataFrameLLM": ".accessor", "Estimate": ".accessor", "SeriesLLM": ".accessor"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llm_magics.dataframe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
