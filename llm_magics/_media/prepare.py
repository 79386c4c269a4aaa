"""Per-provider media limits, and the step that makes a request's images and audio fit them.

:func:`prepare_media` runs in :class:`~llm_magics._client.client.Client` after the cache lookup and
before the provider encodes the request, so a cache hit costs no resizing and no download.
For each media part it:

* fetches an image URL (with the shared HTTP client of the package loop) unless the provider
  takes remote URLs itself: OpenAI, Groq, Anthropic (a ``url`` image source) and Gemini
  (``fileData``) fetch the URL server-side, so it is passed through untouched (not resized);
  Ollama and any other server get the downloaded bytes,
* converts formats the provider does not take (HEIC/AVIF to JPEG, WebP/BMP/TIFF/GIF to PNG;
  ogg/flac/m4a to WAV for OpenAI's ``input_audio``), or refuses with the reason,
* downscales images over the provider's long-side or pixel limit, keeping the aspect ratio,
  and re-encodes anything over its byte limit (PNG to JPEG quality 85, then smaller).

The numbers come from the vendor catalog (one :class:`MediaPolicy` per vendor, each with the
source it comes from) into the kernel's :class:`MediaPolicies`, a part of the session where a
user may replace an entry for this kernel, e.g. ``policies = SESSION.get(MediaPolicies);
policies["ollama"] = dataclasses.replace(policies["ollama"], max_side=1024)``; a provider
instance may also carry its own ``media_policy`` attribute.

Thread safety: the policy table is read-only in normal use (replacing an entry is one dict
store); pixel work runs in a worker thread so the package loop keeps serving other requests.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

from .._core.errors import ConfigError, TimeoutError
from .._core.session import SESSION
from .._core.types import ChatRequest, MediaKind, MediaPart, Message
from ..providers.catalog import DEFAULT_POLICY, MB, VENDORS, MediaPolicy
from . import audio as _audio
from . import image as _image
from .sniff import media_part_from_bytes

__all__ = [
    "MediaPolicies",
    "MediaPolicy",
    "fetch_url",
    "policy_for",
    "prepare_media",
    "prepare_part",
]

#: Largest download accepted for one image or audio URL.
MAX_FETCH_BYTES = 50 * MB
FETCH_TIMEOUT = 60.0


class MediaPolicies(dict[str, MediaPolicy]):
    """The media limits of this kernel by provider name (a part of the session): those of each
    vendor that publishes them, from the catalog, unless a user replaced one."""

    def __init__(self) -> None:
        super().__init__((v.name, v.media) for v in VENDORS.values() if v.media)


# Custom servers registered with these protocols get that protocol's limits.
_BY_PROTOCOL = ("anthropic", "gemini", "ollama")


def policy_for(provider: Any) -> MediaPolicy:
    """The limits for a Provider instance or a provider name (a MediaPolicy is returned as is)."""
    if isinstance(provider, MediaPolicy):
        return provider
    policies = SESSION.get(MediaPolicies)
    if isinstance(provider, str):
        found = policies.get(provider)
        return found if found is not None else dataclasses.replace(DEFAULT_POLICY, label=provider)
    own = getattr(provider, "media_policy", None)
    if isinstance(own, MediaPolicy):
        return own
    name = str(getattr(provider, "name", ""))
    vendor = getattr(provider, "vendor", None)
    if name not in policies and vendor is not None and vendor.media is not None:
        return vendor.media  # a server registered like= a vendor
    if name in policies:
        return policies[name]
    protocol = str(getattr(provider, "protocol", ""))
    if protocol in _BY_PROTOCOL and protocol in policies:
        return dataclasses.replace(policies[protocol], label=name or policies[protocol].label)
    return dataclasses.replace(DEFAULT_POLICY, label=name or DEFAULT_POLICY.label)


async def prepare_media(request: ChatRequest, provider: Any) -> ChatRequest:
    """``request`` with every media part made acceptable to ``provider`` (see module doc).
    Returns the same object when there is no media part, else a copy."""
    if not any(
        isinstance(p, MediaPart)
        for m in request.messages
        if not isinstance(m.content, str)
        for p in m.content
    ):
        return request
    policy = policy_for(provider)
    messages: list[Message] = []
    for message in request.messages:
        if isinstance(message.content, str):
            messages.append(message)
            continue
        parts = [
            await prepare_part(p, policy) if isinstance(p, MediaPart) else p
            for p in message.content
        ]
        messages.append(dataclasses.replace(message, content=parts))
    return dataclasses.replace(request, messages=messages)


async def prepare_part(part: MediaPart, policy: MediaPolicy) -> MediaPart:
    """One part made to fit ``policy`` (unchanged when it already does)."""
    if part.data is None:
        url = str(part.url)
        if part.kind == "image" and policy.image_urls and url.startswith(("https://", "http://")):
            return part
        part = await fetch_url(url, part.kind)
    # Decoding and re-encoding pixels or samples is CPU work: off the loop thread.
    return await asyncio.to_thread(fit_part, part, policy)


def fit_part(part: MediaPart, policy: MediaPolicy) -> MediaPart:
    """The synchronous half of :func:`prepare_part`, for parts that carry bytes."""
    data = part.data
    assert data is not None
    what = _describe(part)
    who = policy.label
    if part.kind == "image":
        fitted = _image.fit_image(
            data,
            part.mime_type,
            accepted=policy.image_mimes,
            max_side=policy.max_side,
            max_pixels=policy.max_pixels,
            max_bytes=policy.max_image_bytes,
            who=who,
            what=what,
        )
        if fitted is None:
            return part
        return MediaPart("image", fitted[1], data=fitted[0], filename=_rename(part, fitted[1]))
    if part.kind == "audio":
        if not policy.audio_mimes:
            raise ConfigError(f"{who} does not take audio input; {what} cannot be sent to it")
        takes = ", ".join(sorted(m.split("/")[1] for m in policy.audio_mimes))
        if part.mime_type not in policy.audio_mimes:
            if "audio/wav" not in policy.audio_mimes:
                raise ConfigError(f"{who} takes audio as {takes}; {what} is {part.mime_type}")
            why = f"{who} takes audio as {takes}"
            data = _audio.decode_to_wav(data, part.mime_type, what=what, why=why)
            part = MediaPart("audio", "audio/wav", data=data, filename=_rename(part, "audio/wav"))
        if len(data) > policy.max_audio_bytes:
            raise ConfigError(
                f"{what} is {len(data) / MB:.1f} MB; {who} takes at most "
                f"{policy.max_audio_bytes / MB:.0f} MB of audio inline. Trim the clip, or use "
                "client.transcribe() for long recordings."
            )
        return part
    if not policy.document_mimes:
        raise ConfigError(f"{who} does not take documents; {what} cannot be sent to it")
    if part.mime_type not in policy.document_mimes:
        takes = ", ".join(sorted(policy.document_mimes))
        raise ConfigError(f"{who} takes documents as {takes}; {what} is {part.mime_type}")
    if len(data) > policy.max_document_bytes:
        raise ConfigError(
            f"{what} is {len(data) / MB:.1f} MB; {who} takes at most "
            f"{policy.max_document_bytes / MB:.0f} MB per document. Split it first."
        )
    return part


async def fetch_url(url: str, kind: MediaKind = "image") -> MediaPart:
    """Download ``url`` with the package's shared HTTP client; the MIME type comes from the
    content (sniffed and, for images, decoded), not from the URL or Content-Type."""
    from .._runtime import http as _http

    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"cannot fetch {url!r}: only http:// and https:// URLs are fetched")
    import httpx2

    where = f"the {kind} URL {url}"
    client = _http.get_client()

    async def download() -> bytes:
        chunks: list[bytes] = []
        size = 0
        async with client.stream("GET", url, follow_redirects=True) as response:
            if response.status_code >= 400:
                raise ConfigError(
                    f"could not fetch the {kind} at {url}: HTTP {response.status_code}. "
                    "Check the URL, or download the file and pass its path."
                )
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_FETCH_BYTES:
                    raise ConfigError(
                        f"the {kind} at {url} is over {MAX_FETCH_BYTES // MB} MB; download "
                        "and shrink it first"
                    )
                chunks.append(chunk)
        return b"".join(chunks)

    try:
        data = await asyncio.wait_for(download(), FETCH_TIMEOUT)
    except (asyncio.TimeoutError, httpx2.TimeoutException) as exc:
        raise TimeoutError(
            f"fetching the {kind} at {url} took longer than {FETCH_TIMEOUT:g} s; try again, or "
            "download the file and pass its path",
            provider=where,
        ) from exc
    except (httpx2.TransportError, httpx2.StreamError) as exc:
        # The user's URL is the input at fault here, not a provider: say so, don't retry.
        raise ConfigError(
            f"could not fetch the {kind} at {url}: {type(exc).__name__}: {exc}. Check the URL "
            "and the network, or download the file and pass its path."
        ) from exc
    name = url.split("?")[0].split("#")[0].rstrip("/").rsplit("/", 1)[-1] or None
    return media_part_from_bytes(data, what=f"the {kind} at {url}", kind=kind, filename=name)


def _describe(part: MediaPart) -> str:
    name = f" {part.filename!r}" if part.filename else ""
    return f"the {part.kind}{name} ({part.mime_type}, {human_size(len(part.data or b''))})"


def human_size(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= 100_000 else f"{n / 1000:.1f} kB"


_EXTENSIONS: Mapping[str, str] = {"image/png": "png", "image/jpeg": "jpg", "audio/wav": "wav"}


def _rename(part: MediaPart, mime: str) -> str | None:
    if not part.filename:
        return None
    stem = part.filename.rsplit(".", 1)[0]
    return f"{stem}.{_EXTENSIONS.get(mime, mime.split('/')[1])}"
