"""What a catalog entry is: a :class:`Vendor`, its :class:`Quirks` and :class:`MediaPolicy`,
and the small rules read from them (snapshot dates, key variables, Ollama's host syntax).

Thread safety: entries are frozen values; reading the environment is safe from any thread.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..._core.settings import load_dotenv_once
from ._profile import ModelProfile

__all__ = [
    "IMAGES",
    "MB",
    "PDF",
    "PNG_JPEG",
    "BatchPolicy",
    "MediaPolicy",
    "PromptCaching",
    "Quirks",
    "Vendor",
    "keys_from_env",
    "normalise_ollama_host",
    "undated",
]

_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


def undated(model: str) -> str:
    """``model`` without a snapshot date (``gpt-4o-2024-08-06`` -> ``gpt-4o``)."""
    return _DATE_SUFFIX.sub("", model)


MB = 1_000_000
IMAGES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
PNG_JPEG = frozenset({"image/png", "image/jpeg"})
PDF = frozenset({"application/pdf"})


@dataclass(frozen=True)
class MediaPolicy:
    """What one provider takes, as sent inline. Byte limits are of the raw bytes (base64 adds
    a third on the wire, which the numbers below already allow for where the provider's limit
    is on the encoded size)."""

    label: str
    image_mimes: frozenset[str] = PNG_JPEG
    max_side: int | None = 2048
    max_pixels: int | None = None
    max_image_bytes: int = 20 * MB
    #: May an http(s) image URL be passed through for the provider to fetch?
    image_urls: bool = False
    audio_mimes: frozenset[str] = frozenset({"audio/wav", "audio/mpeg"})
    max_audio_bytes: int = 20 * MB
    document_mimes: frozenset[str] = PDF
    max_document_bytes: int = 32 * MB
    source: str = ""


@dataclass(frozen=True)
class BatchPolicy:
    """A vendor's Batch API: what one job takes (requests, bytes of its input), the fraction
    of the online price it bills, and the completion window it is asked for."""

    max_requests: int
    max_bytes: int
    price_factor: float = 0.5
    window: str = "24h"
    source: str = ""


@dataclass(frozen=True)
class PromptCaching:
    """How a vendor's prompt cache is reached. ``"automatic"``: the provider caches a long
    enough prompt prefix by itself (OpenAI, Gemini 2.5+), so what matters is that the shared
    part comes first and byte-identical; ``"explicit"``: only a prefix ending in a
    ``cache_control`` breakpoint is cached (Anthropic). ``min_tokens``: the shortest prefix
    stored (a model's profile may say otherwise)."""

    mode: str = "automatic"
    min_tokens: int = 1024
    source: str = ""


@dataclass(frozen=True)
class Quirks:
    """How a vendor departs from its wire protocol's defaults."""

    #: The request field of the output-token limit (OpenAI deprecated ``max_tokens`` for
    #: ``max_completion_tokens``, which its reasoning models require).
    max_tokens_field: str = "max_tokens"
    #: Does a streamed request ask for usage with ``stream_options``? (Groq's schema forbids
    #: the field and reports streamed usage in ``x_groq.usage`` instead.)
    stream_usage_option: bool = True
    #: ``"base64"`` where the embeddings endpoint honours it (half the payload of floats).
    embed_encoding: str = "float"
    #: The embedding model used when none is given (None: the chat model).
    default_embed_model: str | None = None
    #: Media kinds accepted in chat (None: whatever the protocol takes).
    media_kinds: frozenset[str] | None = None
    #: Does the vendor offer a transcription endpoint, and which Whisper model is its default?
    transcribe: bool = True
    default_transcribe_model: str = "whisper-1"
    #: The request field that names a prompt cache (OpenAI's ``prompt_cache_key``: requests
    #: sharing a prefix and a key land on the same cache); None: the vendor has none.
    prompt_cache_key_field: str | None = None


@dataclass(frozen=True)
class Vendor:
    """Everything about one vendor (see the module docstring)."""

    name: str
    display_name: str
    protocol: str  # module in llm_magics.providers
    key_envs: tuple[str, ...]  # single-key variables, in order of preference
    keys_env: str | None  # comma-separated pool for rotation
    base_url_env: str | None
    default_base_url: str
    default_model: str
    needs_key: bool = True
    quirks: Quirks = field(default_factory=Quirks)
    #: Where the wire quirks hold (the vendor's own host); None: wherever the URL points.
    #: ``OPENAI_BASE_URL`` at a llama.cpp server then gets the protocol's plain defaults.
    quirks_host: str | None = None
    media: MediaPolicy | None = None
    #: Turns what ``base_url_env`` holds into a URL (Ollama's OLLAMA_HOST conventions).
    normalise_url: Callable[[str], str] | None = None
    #: What is known of its models: context windows, limits, prices (``provider:*`` rows
    #: apply to every model). Given without a provider; the entry puts its own name in.
    models: tuple[ModelProfile, ...] = ()
    #: Its Batch API (None: none, or not one this package speaks).
    batch: BatchPolicy | None = None
    #: How its prompt cache is reached (None: it has none).
    prompt_cache: PromptCaching | None = None

    def __post_init__(self) -> None:
        # Frozen, so the re-keyed rows go in through object.__setattr__; ``like()`` reruns
        # this under the new name, so a proxy's rows carry the proxy's name. Rows take the
        # vendor's batch price and cache minimum unless they say otherwise.
        factor = self.batch.price_factor if self.batch else None
        minimum = self.prompt_cache.min_tokens if self.prompt_cache else None
        rows = tuple(
            dataclasses.replace(
                row,
                provider=self.name,
                batch=row.batch if row.batch is not None else factor,
                cache_min_tokens=row.cache_min_tokens or minimum,
            )
            for row in self.models
        )
        object.__setattr__(self, "models", rows)

    @property
    def primary_key_env(self) -> str | None:
        return self.key_envs[0] if self.key_envs else None

    def base_url(self) -> str:
        load_dotenv_once()
        url = os.environ.get(self.base_url_env, "") if self.base_url_env else ""
        url = url.strip() or self.default_base_url
        if self.normalise_url is not None:
            url = self.normalise_url(url)
        return url.rstrip("/")

    def quirks_at(self, base_url: str) -> Quirks:
        """The quirks that hold for a server at ``base_url``: the vendor's own wire quirks at
        its host, the protocol's defaults (keeping what it accepts) elsewhere."""
        if self.quirks_host is None:
            return self.quirks
        from urllib.parse import urlsplit

        if urlsplit(base_url).hostname == self.quirks_host:
            return self.quirks
        plain = Quirks()
        return dataclasses.replace(
            self.quirks,
            max_tokens_field=plain.max_tokens_field,
            embed_encoding=plain.embed_encoding,
            prompt_cache_key_field=plain.prompt_cache_key_field,
        )

    def like(self, name: str, base_url: str, **changes: Any) -> Vendor:
        """A server of one's own that behaves like this vendor: same protocol, quirks (at any
        host), media limits and model profiles (a gateway in front of OpenAI bills OpenAI's
        prices), under its own name and URL."""
        media = dataclasses.replace(self.media, label=name) if self.media else None
        fields: dict[str, Any] = {
            "name": name,
            "display_name": name,
            "key_envs": (),
            "keys_env": None,
            "base_url_env": None,
            "default_base_url": base_url.rstrip("/"),
            "default_model": "",
            "quirks_host": None,
            "media": media,
            "normalise_url": None,
        }
        fields.update(changes)
        return dataclasses.replace(self, **fields)


def normalise_ollama_host(value: str) -> str:
    """OLLAMA_HOST may be ``host``, ``host:port`` or a URL (Ollama's own convention)."""
    if "://" not in value:
        value = "http://" + value
    scheme, _, rest = value.partition("://")
    hostport = rest.split("/", 1)[0]
    host = hostport.rsplit(":", 1)[0] if ":" in hostport.lstrip("[") else hostport
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    port = hostport.rsplit(":", 1)[1] if ":" in hostport.lstrip("[") else "11434"
    return f"{scheme}://{host}:{port}"


def keys_from_env(vendor: Vendor) -> tuple[list[str], str | None]:
    """(keys, name of the variable they came from). ``<P>_API_KEYS`` (comma-separated) wins
    over the single-key variables."""
    load_dotenv_once()
    if vendor.keys_env:
        pooled = [k.strip() for k in os.environ.get(vendor.keys_env, "").split(",") if k.strip()]
        if pooled:
            return list(dict.fromkeys(pooled)), vendor.keys_env
    for env in vendor.key_envs:
        value = os.environ.get(env, "").strip()
        if value:
            return [value], env
    return [], None
