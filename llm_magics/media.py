"""Images and audio as prompt parts: sources become bytes + a MIME type sniffed from content.

This module is the home of ``lm.Image`` and ``lm.Audio``; for now it turns paths and bytes
into :class:`~llm_magics._types.MediaPart` objects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._errors import ConfigError
from ._types import MediaKind, MediaPart

__all__ = ["as_media_part", "sniff_mime"]

_SIGNATURES: list[tuple[bytes, int, str]] = [
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"%PDF-", 0, "application/pdf"),
    (b"ID3", 0, "audio/mpeg"),
    (b"fLaC", 0, "audio/flac"),
    (b"OggS", 0, "audio/ogg"),
]


def sniff_mime(data: bytes) -> str | None:
    """The MIME type of ``data`` from its leading bytes, or None when unknown."""
    for magic, offset, mime in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1"):
            return "image/heic"
        return "audio/mp4"
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        return "audio/mpeg"
    return None


def _kind_of(mime: str) -> MediaKind:
    if mime.startswith("image/"):
        return "image"
    if mime.startswith("audio/"):
        return "audio"
    return "document"


def as_media_part(source: Any, *, kind: MediaKind | None = None) -> MediaPart:
    """A MediaPart from a MediaPart, bytes, or a file path."""
    if isinstance(source, MediaPart):
        return source
    to_part = getattr(source, "to_media_part", None)
    if callable(to_part):
        part: MediaPart = to_part()
        return part
    filename = None
    if isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ConfigError(f"media file not found: {str(path)!r}")
        data = path.read_bytes()
        filename = path.name
    elif isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        raise ConfigError(
            f"cannot use a {type(source).__name__} as a prompt part; pass text, a file path, "
            "bytes, or lm.Image / lm.Audio objects"
        )
    mime = sniff_mime(data)
    if mime is None:
        what = f"file {filename!r}" if filename else f"{len(data)} bytes"
        raise ConfigError(
            f"the {what} is not an image, audio or PDF format llm_magics recognises "
            "(png, jpeg, gif, webp, wav, mp3, flac, ogg, m4a, pdf)"
        )
    found = _kind_of(mime)
    if kind is not None and found != kind:
        raise ConfigError(f"expected {kind}, but the content is {mime}")
    return MediaPart(found, mime, data=data, filename=filename)
