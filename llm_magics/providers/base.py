"""What a provider is: a small class with capability flags and one required method.

A provider turns a neutral :class:`~llm_magics._core.types.ChatRequest` into its own wire format,
sends it with :mod:`llm_magics._runtime.http`, and turns the answer back into a
:class:`~llm_magics._core.types.Response`. It does not retry, cache, rotate keys or count cost:
:class:`~llm_magics._client.client.Client` does that around it, the same for every provider.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

from .._core.batch import BatchItem, BatchJob
from .._core.errors import ConfigError
from .._core.secrets import APIKey
from .._core.types import ChatRequest, MediaPart, Response, Transcript, Usage
from .._runtime.http import Timeouts
from .._runtime.http_errors import ErrorContext
from .catalog import VENDORS, BatchPolicy, Quirks, Vendor

__all__ = ["Provider"]


class Provider:
    """Base class of every provider.

    Subclasses must implement :meth:`chat`; they override :meth:`stream`, :meth:`embed`,
    :meth:`transcribe` and :meth:`list_models` where the API offers them, and set the
    matching capability flags so callers get a clear error before any request is sent.
    """

    protocol: ClassVar[str] = "base"
    # Capability flags: class defaults, which an instance may narrow (e.g. Cerebras takes no
    # images although it speaks the OpenAI protocol).
    supports_stream: bool = False
    supports_tools: bool = False
    supports_schema: bool = False
    supports_embed: bool = False
    supports_transcribe: bool = False
    media_kinds: frozenset[str] = frozenset()  # "image", "audio", "document"
    #: Does the wire protocol have a Batch API this package speaks? (A provider offers
    #: ``supports_batch`` when its vendor's entry describes one too.)
    speaks_batch: ClassVar[bool] = False
    context_markers: ClassVar[tuple[str, ...]] = ()
    #: Fields beyond the portable options that this provider is known to take through
    #: ``extra_body`` (named in the error for a misspelt keyword).
    extra_body_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        display_name: str | None = None,
        key_env: str | None = None,
        headers: dict[str, str] | None = None,
        transport: Any = None,
        default_model: str | None = None,
        vendor: Vendor | None = None,
    ) -> None:
        self.name = name
        self.display_name = display_name or name
        self.base_url = base_url.rstrip("/")
        self.key_env = key_env
        self.extra_headers = dict(headers or {})
        self.transport = transport
        self.default_model = default_model
        #: The catalog entry this provider serves (by name when not given), and its quirks
        #: for this base URL: protocol code reads vendor facts from here, never from names.
        self.vendor = vendor if vendor is not None else VENDORS.get(name)
        self.quirks = self.vendor.quirks_at(self.base_url) if self.vendor else Quirks()
        if self.quirks.media_kinds is not None:
            self.media_kinds = self.quirks.media_kinds
        if not self.quirks.transcribe:
            self.supports_transcribe = False
        self.supports_batch = self.speaks_batch and self.batch_policy is not None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})"

    def error_context(self, model: str | None, key: APIKey | None) -> ErrorContext:
        return ErrorContext(
            provider=self.name,
            model=model,
            key_env=self.key_env,
            key_hint=key.hint if key else None,
            context_markers=self.context_markers,
        )

    @property
    def batch_policy(self) -> BatchPolicy | None:
        """What one Batch API job of this vendor takes and bills (None: no Batch API)."""
        return self.vendor.batch if self.vendor is not None else None

    def unsupported(self, what: str, hint: str = "") -> ConfigError:
        return ConfigError(f"{self.name} does not support {what}.{' ' + hint if hint else ''}")

    def check_media(self, request: ChatRequest) -> None:
        """Refuse media this provider cannot take, before any request is sent."""
        for message in request.messages:
            for part in message.parts:
                if isinstance(part, MediaPart) and part.kind not in self.media_kinds:
                    takes = ", ".join(sorted(self.media_kinds)) or "text only"
                    raise self.unsupported(
                        f"{part.kind} input ({part.mime_type})", f"It takes: {takes}."
                    )

    # --- the one required method ---------------------------------------------------------

    async def chat(self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts) -> Response:
        raise NotImplementedError

    # --- optional capabilities -----------------------------------------------------------

    async def stream(
        self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts
    ) -> AsyncIterator[str | Response]:
        """Text deltas, then the complete Response as the last item."""
        response = await self.chat(request, key, timeouts)
        if response.text:
            yield response.text
        yield response

    async def embed(
        self, model: str, texts: Sequence[str], key: APIKey | None, timeouts: Timeouts
    ) -> tuple[list[list[float]], Usage]:
        raise self.unsupported("embeddings")

    async def transcribe(
        self,
        model: str,
        audio: MediaPart,
        key: APIKey | None,
        timeouts: Timeouts,
        *,
        language: str | None = None,
        translate: bool = False,
        timestamps: bool = False,
        prompt: str | None = None,
    ) -> Transcript:
        raise self.unsupported("transcription", "Use openai:, groq: or local for Whisper.")

    async def list_models(self, key: APIKey | None, timeouts: Timeouts) -> list[str]:
        raise self.unsupported("listing models")

    def default_transcribe_model(self) -> str:
        raise self.unsupported("transcription", "Use openai:, groq: or local for Whisper.")

    def default_embed_model(self) -> str:
        raise self.unsupported("embeddings")

    def headers(self, key: APIKey | None) -> dict[str, str]:
        """The HTTP headers of a request made with ``key`` (each protocol says how)."""
        return {}

    def http_options(self, key: APIKey | None, timeouts: Timeouts) -> dict[str, Any]:
        """The keyword arguments of ``request_json`` for a call outside chat (Batch API
        jobs): the error context, headers, timeouts and transport."""
        return {
            "ctx": self.error_context(None, key),
            "headers": self.headers(key),
            "timeout": timeouts,
            "transport": self.transport,
        }

    # --- Batch APIs (where ``supports_batch``) --------------------------------------------

    async def batch_submit(
        self, items: Sequence[tuple[str, ChatRequest]], key: APIKey | None, timeouts: Timeouts
    ) -> BatchJob:
        """Start one job answering each ``(custom_id, request)``."""
        raise self.unsupported("Batch API jobs (mode='batch')", "Use mode='online'.")

    async def batch_status(self, job_id: str, key: APIKey | None, timeouts: Timeouts) -> BatchJob:
        raise self.unsupported("Batch API jobs (mode='batch')", "Use mode='online'.")

    async def batch_results(
        self,
        job: BatchJob,
        requests: Mapping[str, ChatRequest],
        key: APIKey | None,
        timeouts: Timeouts,
    ) -> list[BatchItem]:
        """The outcome of each request of an ended ``job`` (``requests`` by custom id, to read
        the answers as their requests asked)."""
        raise self.unsupported("Batch API jobs (mode='batch')", "Use mode='online'.")

    async def batch_cancel(self, job_id: str, key: APIKey | None, timeouts: Timeouts) -> BatchJob:
        raise self.unsupported("Batch API jobs (mode='batch')", "Use mode='online'.")
