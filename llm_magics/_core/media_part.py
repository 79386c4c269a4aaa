"""A piece of media inside a message: an image, audio clip or document, as bytes or a URL,
identified by the hash of its content. Immutable in use; safe to share between threads (the
hash is computed at most once per thread and always to the same value).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Literal

__all__ = ["MediaKind", "MediaPart"]

MediaKind = Literal["image", "audio", "document"]


class MediaPart:
    """An image, audio clip or document inside a message, as bytes or a remote URL.

    ``content_hash`` identifies the content (used in cache keys) without the bytes.
    :mod:`llm_magics._media.objects` builds these from paths, arrays, PIL images and figures.
    """

    __slots__ = ("_hash", "data", "filename", "kind", "mime_type", "url")

    def __init__(
        self,
        kind: MediaKind,
        mime_type: str,
        *,
        data: bytes | None = None,
        url: str | None = None,
        filename: str | None = None,
    ) -> None:
        if data is None and url is None:
            raise ValueError("MediaPart needs data or url")
        self.kind = kind
        self.mime_type = mime_type
        self.data = data
        self.url = url
        self.filename = filename
        self._hash: str | None = None

    @property
    def content_hash(self) -> str:
        if self._hash is None:
            digest = hashlib.sha256(self.data if self.data is not None else str(self.url).encode())
            self._hash = digest.hexdigest()
        return self._hash

    def b64(self) -> str:
        if self.data is None:
            raise ValueError("this media part is a URL; it has no bytes to encode")
        return base64.b64encode(self.data).decode("ascii")

    def data_url(self) -> str:
        return f"data:{self.mime_type};base64,{self.b64()}"

    def __repr__(self) -> str:
        where = f"{len(self.data)} bytes" if self.data is not None else self.url
        return f"MediaPart({self.kind}, {self.mime_type}, {where})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MediaPart) and other.content_hash == self.content_hash

    def __hash__(self) -> int:
        return hash(self.content_hash)
