"""The vendor catalog: one entry per vendor, holding every fact about it in one place.

A :class:`Vendor` says which env vars hold its keys and base URL, its documented base URL and a
sensible default model, which wire protocol it speaks (a module of :mod:`llm_magics.providers`),
how it departs from that protocol (:class:`Quirks`), and what media it takes inline
(:class:`MediaPolicy`). Protocol code reads these facts from the provider's ``vendor``; it never
tests a vendor's name. Adding a vendor is adding an entry here (and its prices to
:mod:`llm_magics._client.pricing`); a server registered with ``lm.register(..., like="openai")``
gets a copy of that vendor's quirks and media limits under its own name.

Thread safety: entries are frozen; the table is read-only.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._core.settings import load_dotenv_once

__all__ = [
    "DEFAULT_POLICY",
    "MB",
    "VENDORS",
    "MediaPolicy",
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
_IMAGES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
_PNG_JPEG = frozenset({"image/png", "image/jpeg"})
_PDF = frozenset({"application/pdf"})


@dataclass(frozen=True)
class MediaPolicy:
    """What one provider takes, as sent inline. Byte limits are of the raw bytes (base64 adds
    a third on the wire, which the numbers below already allow for where the provider's limit
    is on the encoded size)."""

    label: str
    image_mimes: frozenset[str] = _PNG_JPEG
    max_side: int | None = 2048
    max_pixels: int | None = None
    max_image_bytes: int = 20 * MB
    #: May an http(s) image URL be passed through for the provider to fetch?
    image_urls: bool = False
    audio_mimes: frozenset[str] = frozenset({"audio/wav", "audio/mpeg"})
    max_audio_bytes: int = 20 * MB
    document_mimes: frozenset[str] = _PDF
    max_document_bytes: int = 32 * MB
    source: str = ""


_MEDIA: dict[str, MediaPolicy] = {
    "openai": MediaPolicy(
        "OpenAI",
        image_mimes=_IMAGES,
        # High-detail images are scaled to fit 2048x2048 server-side: more pixels are wasted
        # bytes. 20 MB per image; PNG, JPEG, WebP, non-animated GIF; input_audio: wav, mp3.
        max_side=2048,
        max_image_bytes=20 * MB,
        image_urls=True,
        max_audio_bytes=20 * MB,
        # PDFs: 32 MB of file content per request.
        max_document_bytes=32 * MB,
        source="platform.openai.com/docs/guides/images-vision, /docs/guides/pdf-files",
    ),
    "groq": MediaPolicy(
        "Groq",
        image_mimes=_IMAGES,
        # A request with a base64 image may be 4 MB (413 above), 33,177,600 pixels per image;
        # URL images up to 20 MB. The long side is our choice, as for OpenAI.
        max_side=2048,
        max_pixels=33_177_600,
        max_image_bytes=2_900_000,
        image_urls=True,
        source="console.groq.com/docs/vision",
    ),
    "anthropic": MediaPolicy(
        "Anthropic",
        image_mimes=_IMAGES,
        # The Messages API fetches URL image sources itself (URLImageSource in its spec).
        image_urls=True,
        # Images over 1568 px on the long side are resized server-side (slower, no better);
        # the API rejects a base64 string over 5 MB (= 3.75 MB raw) and sides over 8000 px.
        max_side=1568,
        max_image_bytes=3_750_000,
        audio_mimes=frozenset(),
        document_mimes=frozenset({"application/pdf", "text/plain"}),
        max_document_bytes=24 * MB,  # 32 MB per request, base64-encoded
        source="docs.anthropic.com/en/docs/build-with-claude/vision",
    ),
    "gemini": MediaPolicy(
        "Gemini",
        image_mimes=frozenset(
            {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"}
        ),
        # Larger images are scaled down to fit 3072x3072; inline data may make up 20 MB of
        # request (base64), so 15 MB raw for one part. URLs go as fileData.fileUri, which
        # Gemini fetches itself.
        max_side=3072,
        image_urls=True,
        max_image_bytes=15 * MB,
        audio_mimes=frozenset(
            {"audio/wav", "audio/mpeg", "audio/aiff", "audio/aac", "audio/ogg", "audio/flac"}
        ),
        max_audio_bytes=15 * MB,
        max_document_bytes=15 * MB,
        source="ai.google.dev/gemini-api/docs/image-understanding, /docs/audio",
    ),
    "ollama": MediaPolicy(
        "Ollama",
        # Ollama's vision models decode PNG and JPEG; the limits are ours (no documented
        # limit; its models shrink images to a few hundred px anyway).
        image_mimes=_PNG_JPEG,
        max_side=2048,
        max_image_bytes=20 * MB,
        audio_mimes=frozenset(),
        document_mimes=frozenset(),
        source="github.com/ollama/ollama/blob/main/docs/api.md (images: base64 list)",
    ),
}
#: Any other server (llama.cpp, vLLM, LM Studio, ``local``): PNG/JPEG bytes, nothing remote.
DEFAULT_POLICY = MediaPolicy("this server", source="conservative default")


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
        )

    def like(self, name: str, base_url: str, **changes: Any) -> Vendor:
        """A server of one's own that behaves like this vendor: same protocol, quirks (at any
        host) and media limits, under its own name and URL."""
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


VENDORS: dict[str, Vendor] = {
    v.name: v
    for v in (
        Vendor(
            "openai", "OpenAI", "openai_compat", ("OPENAI_API_KEY",), "OPENAI_API_KEYS",
            "OPENAI_BASE_URL", "https://api.openai.com/v1", "gpt-4o-mini",
            quirks=Quirks(
                max_tokens_field="max_completion_tokens", embed_encoding="base64",
                default_embed_model="text-embedding-3-small",
                media_kinds=frozenset({"image", "audio", "document"}),
            ),
            quirks_host="api.openai.com",
            media=_MEDIA["openai"],
        ),
        Vendor(
            "anthropic", "Anthropic", "anthropic", ("ANTHROPIC_API_KEY",), "ANTHROPIC_API_KEYS",
            "ANTHROPIC_BASE_URL", "https://api.anthropic.com", "claude-haiku-4-5",
            media=_MEDIA["anthropic"],
        ),
        Vendor(
            "gemini", "Gemini", "gemini", ("GEMINI_API_KEY", "GOOGLE_API_KEY"), "GEMINI_API_KEYS",
            "GEMINI_BASE_URL", "https://generativelanguage.googleapis.com", "gemini-2.5-flash",
            media=_MEDIA["gemini"],
        ),
        Vendor(
            "groq", "Groq", "openai_compat", ("GROQ_API_KEY",), "GROQ_API_KEYS",
            "GROQ_BASE_URL", "https://api.groq.com/openai/v1", "llama-3.3-70b-versatile",
            quirks=Quirks(
                stream_usage_option=False, default_transcribe_model="whisper-large-v3-turbo"
            ),
            media=_MEDIA["groq"],
        ),
        Vendor(
            "cerebras", "Cerebras", "openai_compat", ("CEREBRAS_API_KEY",), "CEREBRAS_API_KEYS",
            "CEREBRAS_BASE_URL", "https://api.cerebras.ai/v1", "llama3.1-8b",
            # Text only, and no audio endpoints.
            quirks=Quirks(media_kinds=frozenset(), transcribe=False),
        ),
        Vendor(
            "ollama", "Ollama", "ollama", (), None, "OLLAMA_HOST", "http://127.0.0.1:11434",
            "llama3.2", needs_key=False, media=_MEDIA["ollama"],
            normalise_url=normalise_ollama_host,
        ),
        Vendor(
            "local", "local (embedded SmolLM2)", "local", (), None, None, "", "smollm2-135m",
            needs_key=False,
        ),
    )
}  # fmt: skip


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
