"""Asking the response cache in bulk (:class:`Lookahead`): the requests of the next
``LOOKAHEAD`` plain-text prompts are built and looked up in one cache query, instead of one
query per row.

Thread safety: a Lookahead belongs to one run and is used from that run's event loop only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._client.client import Client
from .._client.pipeline import CacheMode, Prepared
from .._core.errors import LLMError

__all__ = ["LOOKAHEAD", "Lookahead", "request_options"]

#: How many plain-text prompts are built and looked up in the cache at once.
LOOKAHEAD = 256

#: achat options about sending, not about the request.
_SEND_OPTIONS = frozenset({"timeout", "run_tools", "max_tool_rounds"})


def request_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options ``build_request`` takes, out of those ``achat`` takes."""
    return {k: v for k, v in options.items() if k not in _SEND_OPTIONS}


class Lookahead:
    """Builds the requests of the next ``LOOKAHEAD`` plain-text prompts and asks the cache
    about all of them in one query (:meth:`Client.prepare_many`). Workers take prompts in
    order, so the prompt after the prepared ones triggers the next chunk. Prompts with media
    (tuples) are left to ``achat``, which loads their files right before sending. A chunk
    that fails to build (a bad option) is left to ``achat`` too, so each row gets its error.
    """

    def __init__(
        self, client: Client, prompts: Sequence[Any], cache: CacheMode, options: dict[str, Any]
    ) -> None:
        self._prompts = prompts
        self._cache = cache
        self._options = request_options(options)
        uses_cache = cache is not False and client.cache is not None
        wanted = uses_cache and not options.get("run_tools")
        self._prepare = client.prepare_many if wanted else None
        self._ready: dict[int, Prepared] = {}
        self._end = 0

    def take(self, i: int) -> Prepared | None:
        """The prepared request of prompt ``i``, or None: use achat."""
        if self._prepare is None:
            return None
        if i >= self._end:
            self._fill(i)
        return self._ready.pop(i, None)

    def _fill(self, start: int) -> None:
        self._end = min(start + LOOKAHEAD, len(self._prompts))
        # An empty prompt fails on its own (a row error), not the whole chunk's lookup.
        plain = [
            j
            for j in range(start, self._end)
            if isinstance(self._prompts[j], str) and self._prompts[j]
        ]
        if not plain:
            return
        assert self._prepare is not None
        try:
            prepared = self._prepare([self._prompts[j] for j in plain], self._cache, self._options)
        except (LLMError, ValueError, TypeError):
            return
        self._ready.update(zip(plain, prepared, strict=True))
