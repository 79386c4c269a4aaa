"""The report of ``lm.cache_stats()``: what is in the response cache and how this kernel used
it, as a dict, as text and as a Markdown table. A plain value; no shared state."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .._core.fmt import markdown_table, size

__all__ = ["CacheStats"]


@dataclass
class CacheStats:
    """``lm.cache_stats()``: what is in the cache and how this kernel used it."""

    directory: str
    entries: int
    size_bytes: int
    size_limit: int
    ttl: float | None
    hits: int
    misses: int
    writes: int
    refused: int
    read_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _lines(self) -> list[tuple[str, str]]:
        lookups = self.hits + self.misses
        rate = f" ({self.hits / lookups:.0%} hit rate)" if lookups else ""
        return [
            (
                "directory",
                self.directory + (" (read-only: answers are not stored)" if self.read_only else ""),
            ),
            ("entries", f"{self.entries:,}"),
            ("size", f"{size(self.size_bytes)} of {size(self.size_limit)}"),
            ("expiry", f"after {self.ttl:g} s" if self.ttl else "never"),
            ("this session", f"{self.hits} hits, {self.misses} misses{rate}, {self.writes} writes"),
            *([("refused rows", str(self.refused))] if self.refused else []),
        ]

    def __str__(self) -> str:
        return "\n".join(f"{k:>13}: {v}" for k, v in self._lines())

    def _repr_markdown_(self) -> str:
        return markdown_table(["response cache", ""], self._lines())
