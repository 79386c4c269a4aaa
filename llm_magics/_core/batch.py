"""The neutral shape of a provider Batch API job: what the job is doing (:class:`BatchJob`) and
what became of each of its requests (:class:`BatchItem`). Providers translate their own job
objects and result lines into these; the batch engine only ever sees these.

Thread safety: plain values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .types import Response

__all__ = ["BatchItem", "BatchJob", "ItemKind"]

ItemKind = Literal["succeeded", "errored", "expired", "canceled"]


@dataclass
class BatchJob:
    """A job as its provider last reported it. ``status`` is the provider's own word
    (``validating``, ``in_progress``, ``ended``...); ``ended`` means no request of it will
    change any more, so its results can be fetched. Counts are of requests; a provider that
    counts outcomes only at the end (Anthropic) reports ``pending`` until then. ``error`` says
    why the whole job failed (its requests then have no result); ``results`` is where the
    provider keeps the results (file ids, a URL)."""

    id: str
    status: str
    ended: bool
    requests: int
    succeeded: int = 0
    failed: int = 0
    expired: int = 0
    canceled: int = 0
    error: str | None = None
    results: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.expired + self.canceled


@dataclass
class BatchItem:
    """One request's outcome: its ``custom_id``, the answer (``succeeded``) or why there is
    none (``errored`` with the provider's message, ``expired``, ``canceled``)."""

    custom_id: str
    kind: ItemKind
    response: Response | None = None
    error: str = ""
