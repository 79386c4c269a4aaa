"""What ``lm.Image`` and ``lm.Audio`` share: a source, its bytes read on first use, and the one
:class:`~llm_magics._core.types.MediaPart` computed from them; plus sending a part through a
provider's limits (:func:`prepare_part_for`).

Thread safety: a media object may be shared between threads; its MediaPart is computed once,
under the object's lock. Media objects pickle (the lock is rebuilt on load).
"""

from __future__ import annotations

import html
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

from .._core.errors import ConfigError
from .._core.types import MediaKind, MediaPart
from .prepare import human_size, policy_for, prepare_part
from .sniff import kind_phrase, media_part_from_bytes, resolve_path, sniff_mime

__all__ = ["MediaObject", "checked_kind", "prepare_part_for"]


class MediaObject:
    """What Image and Audio share: a source, bytes read on first use, one MediaPart."""

    kind: ClassVar[MediaKind]

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: bytes | None = None
        self._path: Path | None = None
        self._url: str | None = None
        self._part: MediaPart | None = None
        self._fetched: MediaPart | None = None
        self._trusted = False  # encoded here, so not sniffed/decoded again
        self.filename: str | None = None
        self.source = ""

    def __getstate__(self) -> dict[str, Any]:
        # Picklable (DataFrames of images are pickled and deep-copied); the lock is not.
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _copy_from(self, other: MediaObject) -> None:
        with other._lock:
            self._data, self._path, self._url = other._data, other._path, other._url
            self._part, self._trusted = other._part, other._trusted
        self.filename, self.source = other.filename, other.source

    def _from_part(self, part: MediaPart) -> None:
        if part.kind != self.kind:
            raise ConfigError(f"this MediaPart is {part.kind} ({part.mime_type}), not {self.kind}")
        self._data, self._url, self.filename = part.data, part.url, part.filename
        self._part = part if part.data is not None else None
        self.source = "MediaPart"

    def _set_bytes(self, data: bytes | bytearray | memoryview, source: str) -> None:
        self._data = bytes(data)
        self.source = source

    def _set_path(self, src: str | os.PathLike[str]) -> None:
        self._path = resolve_path(src, self.kind)
        self.filename = self._path.name
        self.source = str(src)

    def _what(self) -> str:
        if self._path is not None:
            return f"{self.kind} file {str(self._path)!r}"
        if self._url is not None:
            return f"the {self.kind} at {self._url}"
        return f"the {self.kind} from {self.source}"

    # --- content ---------------------------------------------------------------------------

    def prepared_for(self, provider: Any) -> MediaPart:
        """What ``provider`` (a name like ``"anthropic"``, a Provider or a Client) would
        receive for this media: downloaded, converted and downscaled to its limits. Sends
        nothing; blocks while the pixels or samples are worked on."""
        return prepare_part_for(checked_kind(self.to_media_part(), self.kind), provider)

    def to_media_part(self) -> MediaPart:
        """The neutral part providers encode (computed once; checked from the content)."""
        part = self._part
        if part is not None:
            return part
        with self._lock:
            if self._part is None:
                self._part = self._make_part()
            return self._part

    def _make_part(self) -> MediaPart:
        if self._data is None and self._path is None and self._url is not None:
            return MediaPart(self.kind, f"{self.kind}/*", url=self._url)
        data = self._data if self._data is not None else self._read()
        if self._trusted:
            mime = sniff_mime(data) or "application/octet-stream"
            return MediaPart(self.kind, mime, data=data, filename=self.filename)
        return media_part_from_bytes(
            data, what=self._what(), kind=self.kind, filename=self.filename
        )

    def _read(self) -> bytes:
        assert self._path is not None
        try:
            return self._path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {self._what()}: {exc}") from exc

    @property
    def data(self) -> bytes:
        """The bytes (a URL is downloaded on first access, with the shared HTTP client)."""
        part = self.to_media_part()
        if part.data is not None:
            return part.data
        # The part stays a URL (its hash is the cache key); the download is kept beside it.
        if self._fetched is None:
            from .._runtime import loop as _loop
            from .prepare import fetch_url

            self._fetched = _loop.run(fetch_url(str(part.url), self.kind))
        return self._fetched.data or b""

    @property
    def mime_type(self) -> str:
        """The MIME type, sniffed from the content."""
        return sniff_mime(self.data) or self.to_media_part().mime_type

    @property
    def url(self) -> str | None:
        return self._url

    @property
    def content_hash(self) -> str:
        """sha256 of the bytes (of the URL for a URL not downloaded), as in cache keys."""
        return self.to_media_part().content_hash

    def __repr__(self) -> str:
        part = self._part
        shown = f"{self.source[:80]!r}"
        if part is not None and part.data is not None:
            return f"{type(self).__name__}({shown}, {part.mime_type}, {human_size(len(part.data))})"
        return f"{type(self).__name__}({shown})"

    def _caption(self, part: MediaPart, details: list[str]) -> str:
        name = [self.filename] if self.filename else []
        size = [human_size(len(part.data))] if part.data is not None else []
        text = " · ".join([type(self).__name__, part.mime_type, *details, *size, *name])
        return f'<figcaption style="font-size:smaller">{html.escape(text)}</figcaption>'


def checked_kind(part: MediaPart, kind: MediaKind | None) -> MediaPart:
    """``part``, or a ConfigError when ``kind`` is given and ``part`` is another kind."""
    if kind is not None and part.kind != kind:
        raise ConfigError(
            f"expected {kind_phrase(kind)}, got {kind_phrase(part.kind)} ({part.mime_type})"
        )
    return part


def prepare_part_for(part: MediaPart, provider: Any) -> MediaPart:
    """``part`` as ``provider`` (a name, a Provider or a Client) would receive it: downloaded,
    converted and downscaled to its limits. Blocking."""
    from .._runtime import loop as _loop

    target = getattr(provider, "provider", provider)  # a Client holds its Provider
    return _loop.run(prepare_part(part, policy_for(target)))
