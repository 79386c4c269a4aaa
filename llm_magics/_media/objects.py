"""Images and audio as prompt parts: ``lm.Image(src)`` and ``lm.Audio(src, rate=None)``.

    client.chat(["What is in this picture?", lm.Image("cat.png")])
    client.chat(["Describe this chart", lm.Image(fig)])            # a matplotlib Figure
    client.chat(["What is said here?", lm.Audio(samples, rate=48_000)])

Sources. Image: a path, an http(s) URL, bytes, a PIL image, a numpy array (HxW, HxWx3, HxWx4;
uint8, or float in [0, 1]), a matplotlib Figure (or Axes), an ``IPython.display.Image``.
Audio: a path, bytes, a numpy array with ``rate=`` (written as 16-bit PCM WAV; stereo as
frames x channels; floats in [-1, 1], clipped outside), an ``IPython.display.Audio``.

The type always comes from the content, never from a file name: a text file named ``.png``
is refused, and a truncated PNG is refused too (it is decoded with Pillow when installed).
In-memory objects (PIL images, arrays, figures) are encoded when wrapped, so a later change to
the figure does not change the Image; files are read once, on first use; URLs are left as
URLs, downloaded with the shared HTTP client only for providers that need the bytes.

Each object becomes a :class:`~llm_magics._core.types.MediaPart` through :meth:`to_media_part`
(``content_hash`` identifies it in cache keys). Limits per provider (long side, bytes,
formats) are applied when a request is sent: see :mod:`llm_magics._media.prepare` and
:func:`prepare_for`, which shows what a provider would receive.

Pillow and numpy are optional (``pip install 'llm-magics[media]'``) and only imported when a
source needs them. Image and Audio objects are safe to share between threads.
"""

from __future__ import annotations

import base64
import html
import os
from typing import Any, ClassVar

from .._core.errors import ConfigError, LLMError
from .._core.types import MediaKind, MediaPart
from . import audio as _audio
from . import image as _image
from .media_object import MediaObject, checked_kind, prepare_part_for
from .prepare import MediaPolicies, MediaPolicy, policy_for
from .sniff import (
    decode_data_url,
    is_ipython_display,
    is_ndarray,
    is_pil,
    media_part_from_bytes,
    resolve_path,
    sniff_mime,
)

__all__ = [
    "Audio",
    "Image",
    "MediaPolicies",
    "MediaPolicy",
    "as_media_part",
    "media_part_from_bytes",
    "policy_for",
    "prepare_for",
    "sniff_mime",
]

_PREVIEW_SIDE = 192
_MAX_INLINE_PREVIEW = 8_000_000


class Image(MediaObject):
    """An image for a prompt: ``lm.Image("cat.png")``, ``lm.Image(url)``, ``lm.Image(fig)``,
    ``lm.Image(array)``, ``lm.Image(pil_image)``, ``lm.Image(IPython.display.Image(...))``,
    ``lm.Image(png_bytes)``. In a notebook it shows a thumbnail."""

    kind: ClassVar[MediaKind] = "image"

    def __init__(self, src: Any) -> None:
        super().__init__()
        if isinstance(src, Image):
            self._copy_from(src)
        elif isinstance(src, MediaPart):
            self._from_part(src)
        elif isinstance(src, str) and src.startswith(("https://", "http://")):
            self._url = self.source = src
        elif isinstance(src, str) and src.startswith("data:"):
            self._set_bytes(decode_data_url(src, "the image"), "a data: URL")
        elif isinstance(src, str | os.PathLike):
            self._set_path(src)
        elif isinstance(src, bytes | bytearray | memoryview):
            self._set_bytes(src, f"{len(src)} bytes")
        elif is_ipython_display(src, "Image"):
            if isinstance(src.data, bytes) and src.data:
                self._set_bytes(src.data, "IPython.display.Image")
            elif getattr(src, "url", None):
                self._url = self.source = str(src.url)
            else:
                raise ConfigError("this IPython.display.Image holds neither bytes nor a URL")
            self.filename = (
                os.path.basename(src.filename) if getattr(src, "filename", None) else None
            )
        elif is_pil(src):
            self._data, _ = _image.pil_to_bytes(src)
            self._trusted, self.source = True, f"a PIL image ({src.mode} {src.width}x{src.height})"
        elif is_ndarray(src):
            self._data = _image.array_to_png(src)
            self._trusted, self.source = True, f"an array of shape {tuple(src.shape)}"
        elif (fig := _image.figure_of(src)) is not None:
            self._data = _image.figure_to_png(fig)
            self._trusted, self.source = True, "a matplotlib figure"
        else:
            raise ConfigError(
                f"lm.Image cannot use a {type(src).__name__}: pass a file path, an http(s) URL, "
                "bytes, a PIL image, a numpy array, a matplotlib Figure, or an "
                "IPython.display.Image"
            )

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) in pixels, read from the image header."""
        return _image.image_size(self.data, self.mime_type)

    def to_pil(self) -> Any:
        """The image as a PIL image (needs Pillow)."""
        import io

        pil = _image.require_pil("Image.to_pil()")
        img = pil.open(io.BytesIO(self.data))
        img.load()
        return img

    def _repr_html_(self) -> str:
        if self._url is not None and self._data is None and self._fetched is None:
            url = html.escape(self._url, quote=True)
            return (
                f'<figure style="margin:0"><img src="{url}" style="max-width:{_PREVIEW_SIDE}px;'
                f'max-height:{_PREVIEW_SIDE}px"><figcaption style="font-size:smaller">Image · '
                f"{url} (fetched when sent)</figcaption></figure>"
            )
        try:
            part = self.to_media_part()
            data = self.data
        except LLMError as exc:
            return f"<pre>Image: {html.escape(str(exc))}</pre>"
        thumb = _image.thumbnail(data, part.mime_type, _PREVIEW_SIDE)
        details = []
        size = _image.image_size(data, part.mime_type)
        if size is not None:
            details.append(f"{size[0]}×{size[1]} px")
        if thumb is not None:
            src = f"data:{thumb[1]};base64,{base64.b64encode(thumb[0]).decode('ascii')}"
        elif len(data) <= _MAX_INLINE_PREVIEW:
            src = part.data_url()
        else:
            return f'<figure style="margin:0">{self._caption(part, details)}</figure>'
        return (
            f'<figure style="margin:0"><img src="{src}" style="max-width:{_PREVIEW_SIDE}px;'
            f'max-height:{_PREVIEW_SIDE}px">{self._caption(part, details)}</figure>'
        )


class Audio(MediaObject):
    """Audio for a prompt or for ``client.transcribe``: ``lm.Audio("talk.wav")``,
    ``lm.Audio(samples, rate=16_000)``, ``lm.Audio(flac_bytes)``,
    ``lm.Audio(IPython.display.Audio(...))``. In a notebook it shows a player."""

    kind: ClassVar[MediaKind] = "audio"

    def __init__(self, src: Any, rate: int | float | None = None) -> None:
        super().__init__()
        array_like = is_ndarray(src) or isinstance(src, list | tuple)
        if rate is not None and not array_like:
            raise ConfigError(
                f"rate= is for sample arrays; a {type(src).__name__} carries its own sample rate"
            )
        if array_like:
            if rate is None:
                raise ConfigError(
                    "an audio array needs its sample rate: lm.Audio(samples, rate=16000) "
                    "(samples per second)"
                )
            np = _image.require_numpy("an audio array")
            arr = np.asarray(src)
            self._data = _audio.array_to_wav(arr, _audio.check_rate(rate))
            self._trusted, self.source = True, f"an array of shape {tuple(arr.shape)}"
        elif isinstance(src, Audio):
            self._copy_from(src)
        elif isinstance(src, MediaPart):
            self._from_part(src)
        elif isinstance(src, str) and src.startswith(("https://", "http://")):
            raise ConfigError(
                f"audio URLs are not downloaded ({src}); download the file and pass its path"
            )
        elif isinstance(src, str) and src.startswith("data:"):
            self._set_bytes(decode_data_url(src, "the audio"), "a data: URL")
        elif isinstance(src, str | os.PathLike):
            self._set_path(src)
        elif isinstance(src, bytes | bytearray | memoryview):
            self._set_bytes(src, f"{len(src)} bytes")
        elif is_ipython_display(src, "Audio"):
            if not (isinstance(src.data, bytes) and src.data):
                raise ConfigError(
                    "this IPython.display.Audio holds a URL, not the sound; pass the file path "
                    "or the samples with rate= instead"
                )
            self._set_bytes(src.data, "IPython.display.Audio")
            self.filename = (
                os.path.basename(src.filename) if getattr(src, "filename", None) else None
            )
        else:
            raise ConfigError(
                f"lm.Audio cannot use a {type(src).__name__}: pass a file path, bytes, a numpy "
                "array with rate=, or an IPython.display.Audio"
            )

    @property
    def info(self) -> _audio.WavInfo | None:
        """Channels, rate and frames of a PCM WAV (None for other formats)."""
        return _audio.wav_info(self.data)

    @property
    def rate(self) -> int | None:
        info = self.info
        return info.rate if info else None

    @property
    def channels(self) -> int | None:
        info = self.info
        return info.channels if info else None

    @property
    def duration(self) -> float | None:
        """Seconds, for a PCM WAV."""
        info = self.info
        return info.duration if info else None

    def _repr_html_(self) -> str:
        try:
            part = self.to_media_part()
            data = self.data
        except LLMError as exc:
            return f"<pre>Audio: {html.escape(str(exc))}</pre>"
        info = _audio.wav_info(data) if part.mime_type == "audio/wav" else None
        details = []
        if info is not None:
            details += [f"{info.duration:.2f} s", f"{info.rate} Hz", f"{info.channels} ch"]
        player = ""
        if len(data) <= _MAX_INLINE_PREVIEW:
            player = f'<audio controls src="{part.data_url()}"></audio>'
        return f'<figure style="margin:0">{player}{self._caption(part, details)}</figure>'


def as_media_part(source: Any, kind: MediaKind | None = None) -> MediaPart:
    """A MediaPart from anything Image or Audio accept (and MediaParts), with the kind inferred
    from the source; ``kind=`` ("image", "audio", "document") insists on one, e.g. for a
    DataFrame cell holding a path, URL or bytes."""
    if isinstance(source, MediaPart):
        part = source
    elif isinstance(source, MediaObject) or callable(getattr(source, "to_media_part", None)):
        part = source.to_media_part()
    elif kind == "image":
        part = Image(source).to_media_part()
    elif kind == "audio":
        part = Audio(source).to_media_part()
    else:
        part = _guess(source, kind)
    return checked_kind(part, kind)


def _guess(source: Any, kind: MediaKind | None) -> MediaPart:
    if is_ipython_display(source, "Audio"):
        return Audio(source).to_media_part()
    if is_ndarray(source):
        shape = tuple(source.shape)
        if len(shape) == 1 or (len(shape) == 2 and min(shape) <= 2 and max(shape) > 64):
            raise ConfigError(
                f"an array of shape {shape} looks like audio samples; audio needs its sample "
                "rate: pass lm.Audio(samples, rate=SAMPLE_RATE) (or lm.Image(arr) if it really "
                "is an image)"
            )
        return Image(source).to_media_part()
    if isinstance(source, str) and source.startswith(("https://", "http://")):
        return Image(source).to_media_part()  # only images are taken by URL
    if isinstance(source, str) and source.startswith("data:"):
        return media_part_from_bytes(
            decode_data_url(source, "the data: URL"), what="the data: URL", kind=kind
        )
    if isinstance(source, str | os.PathLike):
        path = resolve_path(source, kind or "media")
        what = f"file {str(path)!r}"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {what}: {exc}") from exc
        return media_part_from_bytes(data, what=what, kind=kind, filename=path.name)
    if isinstance(source, bytes | bytearray | memoryview):
        return media_part_from_bytes(bytes(source), what=f"{len(source)} bytes", kind=kind)
    if (
        is_ipython_display(source, "Image")
        or is_pil(source)
        or _image.figure_of(source) is not None
    ):
        return Image(source).to_media_part()
    raise ConfigError(
        f"cannot use a {type(source).__name__} as a prompt part; pass text, a file path, bytes, "
        "a PIL image, a numpy array, a matplotlib figure, or lm.Image / lm.Audio objects"
    )


def prepare_for(source: Any, provider: Any, *, kind: MediaKind | None = None) -> MediaPart:
    """What ``provider`` (a name like ``"anthropic"``, a Provider or a Client) would receive
    for ``source``: downloaded, converted and downscaled to its limits. Blocking."""
    return prepare_part_for(as_media_part(source, kind), provider)
