"""Reading what a media source really is: the MIME type sniffed from the leading bytes (never
from a file name), raw bytes turned into a checked MediaPart, paths and data: URLs read, and
the duck-typed recognisers for PIL images, numpy arrays and IPython display objects (which never
import those libraries). Pure functions: thread-safe.
"""

from __future__ import annotations

import base64
import binascii
import os
import sys
from pathlib import Path
from typing import Any

from .._core.errors import ConfigError
from .._core.types import MediaKind, MediaPart
from . import image as _image

__all__ = [
    "decode_data_url",
    "is_ipython_display",
    "is_ndarray",
    "is_pil",
    "kind_phrase",
    "media_part_from_bytes",
    "resolve_path",
    "sniff_mime",
]

_SIGNATURES: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"%PDF-", "application/pdf"),
    (b"ID3", "audio/mpeg"),
    (b"fLaC", "audio/flac"),
    (b"OggS", "audio/ogg"),
    (b"\x1aE\xdf\xa3", "audio/webm"),
]
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


def sniff_mime(data: bytes) -> str | None:
    """The MIME type of ``data`` from its leading bytes, or None when unknown."""
    for magic, mime in _SIGNATURES:
        if data.startswith(magic):
            return mime
    head = data[:12]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio/aiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "image/heic" if brand.startswith(b"he") else "image/heif"
        if brand in (b"avif", b"avis"):
            return "image/avif"
        return "audio/mp4"
    if head[:2] == b"BM" and len(data) > 26 and data[6:10] == b"\x00\x00\x00\x00":
        return "image/bmp"  # reserved bytes are zero in every real BMP
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        # MPEG audio frame sync; layer bits 00 mean AAC in an ADTS stream.
        return "audio/aac" if data[1] & 0x06 == 0 else "audio/mpeg"
    return None


def _kind_of(mime: str) -> MediaKind:
    if mime.startswith("image/"):
        return "image"
    if mime.startswith("audio/"):
        return "audio"
    return "document"


def kind_phrase(kind: str) -> str:
    return {"image": "an image", "audio": "audio", "document": "a document"}.get(kind, kind)


def media_part_from_bytes(
    data: bytes, *, what: str, kind: MediaKind | None = None, filename: str | None = None
) -> MediaPart:
    """A MediaPart from raw bytes: the type sniffed from the content, images decoded to prove
    they are whole (when Pillow is installed), ``kind`` enforced when given."""
    if not data:
        raise ConfigError(f"{what} is empty (0 bytes)")
    mime = sniff_mime(data)
    if mime is None:
        lowered = data[:1024].lstrip().lower()
        if lowered.startswith((b"<svg", b"<?xml")) and b"<svg" in lowered:
            raise ConfigError(
                f"{what} is an SVG drawing; models take raster images: render it to PNG first"
            )
        raise ConfigError(
            f"{what} is not an image, audio or PDF format llm_magics recognises (png, jpeg, "
            "gif, webp, heic, avif, bmp, tiff; wav, mp3, flac, ogg, m4a, aac, aiff, webm; pdf). "
            f"Its content starts with {data[:16]!r}; the type is read from the content, not "
            "the file name."
        )
    found = _kind_of(mime)
    if kind is not None and found != kind:
        raise ConfigError(f"{what} should be {kind_phrase(kind)}, but its content is {mime}")
    if found == "image":
        _image.verify_image(data, mime, what)
    return MediaPart(found, mime, data=data, filename=filename)


def resolve_path(src: str | os.PathLike[str], kind: str) -> Path:
    path = Path(src).expanduser()
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to the working directory {os.getcwd()})"
        missing = "is a directory, not a file" if path.is_dir() else "not found"
        raise ConfigError(f"{kind} file {str(path)!r} {missing}{where}")
    return path


def decode_data_url(url: str, what: str) -> bytes:
    header, _, payload = url.partition(",")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{what} is a data: URL whose base64 does not decode: {exc}") from exc
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(payload)


def is_ipython_display(obj: Any, name: str) -> bool:
    cls = type(obj)
    return cls.__name__ == name and (cls.__module__ or "").startswith("IPython.")


def is_pil(obj: Any) -> bool:
    module = sys.modules.get("PIL.Image")
    return module is not None and isinstance(obj, module.Image)


def is_ndarray(obj: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(obj, np.ndarray)
