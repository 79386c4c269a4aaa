"""A conversation's answer as a stream: text as it arrives, the turn recorded when it ends.

An answer cut short (Ctrl-C, ``break``, a dropped connection) is still recorded with the text
that arrived and the finish reason ``"interrupted"``, so the conversation goes on from what
the user saw; the error, if any, is raised as usual.

Thread safety: iterate from one thread (the stream is driven on the package's loop thread).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from .._core.types import Response

if TYPE_CHECKING:
    from .._client.client import Client
    from .._client.stream import TextStream


class _Recorder(Protocol):
    """What a stream needs of its conversation (a Protocol: memory.py imports this module)."""

    def add(self, prompt: Any, response: Response | str) -> Any: ...


__all__ = ["ConversationStream"]


class ConversationStream:
    """Iterate for text deltas; ``.response`` is the whole Response once the stream ended."""

    def __init__(
        self, conversation: _Recorder, prompt: Any, client: Client, stream: TextStream
    ) -> None:
        self.conversation = conversation
        self._prompt = prompt
        self._client = client
        self._stream = stream
        self._iterator: Iterator[str] | None = None
        self._recorded = False
        self._started = time.perf_counter()

    @property
    def response(self) -> Response | None:
        return self._stream.response

    @property
    def text(self) -> str:
        return self._stream.text

    def __iter__(self) -> Iterator[str]:
        if self._iterator is None:
            self._iterator = self._pieces()
        return self._iterator

    def __next__(self) -> str:
        return next(iter(self))

    def _pieces(self) -> Iterator[str]:
        seen: list[str] = []
        try:
            for piece in self._stream:
                seen.append(piece)
                yield piece
        except BaseException:  # recorded as far as it got, then raised on
            self._record("".join(seen))
            raise
        self._record(None)

    def _record(self, cut_at: str | None) -> None:
        """Record the turn: the whole response, or (``cut_at``) the text the caller saw
        before the stream stopped, with what the call cost when the provider said."""
        if self._recorded:
            return
        self._recorded = True
        whole = self._stream.response
        if cut_at is None and whole is not None:
            self.conversation.add(self._prompt, whole)
            return
        if not cut_at:
            return  # nothing arrived: the question stays unanswered, as before the call
        partial = Response(
            cut_at,
            self._client.model,
            self._client.provider.name,
            finish_reason="interrupted",
        )
        if whole is not None:
            partial.usage, partial.cost = whole.usage, whole.cost
        elif _free(self._client):  # a stopped answer of a model that costs nothing
            partial.cost = 0.0
        partial.latency = time.perf_counter() - self._started
        self.conversation.add(self._prompt, partial)

    def close(self) -> None:
        """Stop the answer; what arrived is recorded."""
        if self._iterator is not None:
            self._iterator.close()  # type: ignore[attr-defined]
        self._stream.close()
        self._record("")

    def __enter__(self) -> ConversationStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _free(client: Client) -> bool:
    """Whether ``client``'s model is priced at nothing (the embedded model): only then is
    the cost of an answer without usage known."""
    from .._client.pricing import profile_for

    profile = profile_for(client.provider.name, client.model)
    return profile is not None and profile.input == 0 and profile.output == 0
