"""Pixel work behind :class:`llm_magics._media.objects.Image`: turning in-memory images (PIL images,
numpy arrays, matplotlib figures) into PNG/JPEG bytes, checking that bytes really decode,
measuring, and fitting an image into a provider's limits (downscale, re-encode, convert).

Pillow and numpy are optional (the ``[media]`` extra). Nothing here imports them at module
level: each function imports what it needs and, when it is missing, raises a ConfigError that
says what to install. Every function is pure (no shared state), so all are thread-safe.
"""

from __future__ import annotations

import io
import math
from typing import Any

from .._core.errors import ConfigError
from .image_header import header_size

__all__ = [
    "JPEG_QUALITY",
    "MEDIA_EXTRA",
    "array_to_png",
    "figure_of",
    "figure_to_png",
    "fit_image",
    "image_size",
    "pil_to_bytes",
    "require_numpy",
    "require_pil",
    "thumbnail",
    "verify_image",
]

MEDIA_EXTRA = "pip install 'llm-magics[media]'"
#: Quality of every JPEG this package writes: visually lossless for photos at a third of
#: the bytes of quality 95.
JPEG_QUALITY = 85
# Formats that are photographs in practice: they are re-encoded as JPEG, not PNG.
_PHOTO_MIMES = frozenset({"image/jpeg", "image/heic", "image/heif", "image/avif"})
_HEIF_MIMES = frozenset({"image/heic", "image/heif"})
_WORKING_MODES = frozenset({"L", "LA", "RGB", "RGBA"})


def require_pil(why: str) -> Any:
    """The ``PIL.Image`` module, or a ConfigError saying ``why`` it is needed."""
    try:
        from PIL import Image as PILImage
    except ImportError as exc:
        raise ConfigError(f"{why} needs Pillow, which is not installed: {MEDIA_EXTRA}") from exc
    return PILImage


def require_numpy(why: str) -> Any:
    try:
        import numpy
    except ImportError as exc:
        raise ConfigError(f"{why} needs numpy, which is not installed: {MEDIA_EXTRA}") from exc
    return numpy


def _register_heif(required: bool, what: str = "") -> None:
    """Teach Pillow HEIC/HEIF through pillow-heif (its own package, not part of Pillow)."""
    try:
        import pillow_heif
    except ImportError as exc:
        if required:
            raise ConfigError(
                f"{what} is HEIC/HEIF, which Pillow reads only with the pillow-heif plugin: "
                "pip install pillow-heif (or convert the photo to JPEG first)"
            ) from exc
        return
    pillow_heif.register_heif_opener()


# --- encoding in-memory images -----------------------------------------------------------


def pil_to_bytes(img: Any, *, photo: bool | None = None) -> tuple[bytes, str]:
    """Encode a PIL image: JPEG for photographs (an image Pillow opened from a JPEG or HEIC
    file), PNG for everything else (lossless; keeps transparency)."""
    if photo is None:
        photo = (getattr(img, "format", None) or "").upper() in ("JPEG", "MPO", "HEIF", "AVIF")
    img = _working_mode(img)
    if photo:
        return _save(img, "JPEG"), "image/jpeg"
    return _save(img, "PNG"), "image/png"


def array_to_png(arr: Any) -> bytes:
    """A numpy image array as PNG: HxW (grayscale), HxWx3 (RGB) or HxWx4 (RGBA); dtype uint8
    (0-255), bool, or float in [0, 1]."""
    np = require_numpy("an image array")
    pil = require_pil("encoding an image array as PNG")
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise ConfigError(
            "an image array must be HxW (grayscale), HxWx3 (RGB) or HxWx4 (RGBA); got shape "
            f"{a.shape}. For audio use lm.Audio(arr, rate=SAMPLE_RATE)."
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ConfigError(f"the image array is empty (shape {a.shape})")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ConfigError("the float image array contains NaN or infinity; clean it first")
        lo, hi = float(a.min()), float(a.max())
        # A little slack for rounding noise; a 0-255 float array is a mistake worth naming.
        if lo < -0.01 or hi > 1.01:
            raise ConfigError(
                f"a float image array must hold values in [0, 1]; this one spans "
                f"[{lo:g}, {hi:g}]. Divide by its maximum (e.g. arr / 255) or pass uint8."
            )
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise ConfigError(
                f"an integer image array must hold values 0-255; this one spans [{lo}, {hi}] "
                f"({a.dtype}). Scale it to uint8, or to floats in [0, 1]."
            )
        a = a.astype(np.uint8)
    else:
        raise ConfigError(f"image arrays must be uint8 or float in [0, 1]; got dtype {a.dtype}")
    return _save(pil.fromarray(np.ascontiguousarray(a)), "PNG")


def figure_of(obj: Any) -> Any:
    """The matplotlib Figure behind ``obj`` (a Figure, SubFigure, Axes, or a seaborn grid with
    ``.figure``), or None when ``obj`` is not a plot."""
    module = type(obj).__module__ or ""
    inner = None if module.startswith("matplotlib.") else getattr(obj, "figure", None)
    if not module.startswith("matplotlib.") and inner is None:
        return None
    if inner is not None and not (type(inner).__module__ or "").startswith("matplotlib."):
        return None
    # matplotlib is imported already: one of its objects is in hand.
    from matplotlib.figure import Figure

    for candidate in (obj, inner, getattr(obj, "figure", None)):
        if isinstance(candidate, Figure):
            return candidate
        root = getattr(candidate, "figure", None)  # a SubFigure's root Figure
        if isinstance(root, Figure):
            return root
    return None


def figure_to_png(fig: Any) -> bytes:
    """Render a matplotlib Figure as PNG at its own dpi, so the PNG is exactly the size the
    figure reports (``fig.get_size_inches() * fig.dpi``); no tight bbox."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return buf.getvalue()


# --- checking and measuring -----------------------------------------------------------------


def verify_image(data: bytes, mime: str, what: str) -> None:
    """Decode ``data`` fully with Pillow, when Pillow is installed, so a truncated or corrupt
    file fails here with its name instead of at the provider. Without Pillow only the header
    was checked (by the MIME sniffing)."""
    try:
        from PIL import Image as PILImage
    except ImportError:
        return
    if mime in _HEIF_MIMES:
        _register_heif(required=False)
    try:
        with PILImage.open(io.BytesIO(data)) as img:
            if img.format == "JPEG":
                # Decoding at 1/8 scale still reads every byte of the entropy-coded data (so
                # truncation is caught) at a fraction of the cost.
                img.draft(None, (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
    except PILImage.UnidentifiedImageError as exc:
        if mime in _HEIF_MIMES:
            return  # no plugin: checked (with a clear message) when it has to be converted
        raise ConfigError(
            f"{what} starts like {mime} but Pillow cannot read it ({exc}). The file is "
            "corrupt or not really an image; re-save or re-download it."
        ) from exc
    except PILImage.DecompressionBombError as exc:
        raise ConfigError(f"{what} is too large to decode safely: {exc}") from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error...
        raise ConfigError(
            f"{what} is not a valid {mime} image: {exc}. The file is truncated or corrupt; "
            "re-save or re-download it."
        ) from exc


def image_size(data: bytes, mime: str) -> tuple[int, int] | None:
    """(width, height) from the header: Pillow when installed, else PNG/GIF/JPEG by hand."""
    try:
        from PIL import Image as PILImage
    except ImportError:
        return header_size(data, mime)
    if mime in _HEIF_MIMES:
        _register_heif(required=False)
    try:
        with PILImage.open(io.BytesIO(data)) as img:
            width, height = img.size
            return int(width), int(height)
    except Exception:
        return header_size(data, mime)


# --- fitting into a provider's limits -----------------------------------------------------


def fit_image(
    data: bytes,
    mime: str,
    *,
    accepted: frozenset[str],
    max_side: int | None,
    max_pixels: int | None,
    max_bytes: int,
    who: str,
    what: str,
) -> tuple[bytes, str] | None:
    """Bytes + MIME that ``who`` accepts, or None when ``data`` already fits.

    Oversized images are downscaled keeping the aspect ratio; formats ``who`` does not take
    are converted (HEIC/AVIF/JPEG to JPEG, anything else to PNG); a PNG that is still over
    ``max_bytes`` becomes a JPEG, and a JPEG that is still over is scaled down further.
    Animated GIFs become a PNG of their first frame (no provider documents animation).
    """
    reasons = _reasons_to_refit(
        data, mime, accepted, max_side=max_side, max_pixels=max_pixels, max_bytes=max_bytes, who=who
    )
    if not reasons:
        return None
    pil = require_pil(f"sending {what} to {who} ({'; '.join(reasons)})")
    if mime in _HEIF_MIMES:
        _register_heif(required=True, what=what)
    img, full, target = _open_upright(pil, data, max_side, max_pixels)
    photo = mime in _PHOTO_MIMES
    for attempt in range(12):
        sized = img if target == img.size else img.resize(target, pil.Resampling.LANCZOS)
        if not photo:
            out = _save(sized, "PNG")
            if len(out) <= max_bytes:
                return out, "image/png"
        out = _save(sized, "JPEG")
        if len(out) <= max_bytes:
            return out, "image/jpeg"
        # Still too many bytes: a quarter off each side, each round.
        target = _scaled(full, max_side, max_pixels, 0.75 ** (attempt + 1))
        photo = True
    raise ConfigError(f"{what} cannot be made smaller than {_mb(max_bytes)} for {who}")


def _reasons_to_refit(
    data: bytes,
    mime: str,
    accepted: frozenset[str],
    *,
    max_side: int | None,
    max_pixels: int | None,
    max_bytes: int,
    who: str,
) -> list[str]:
    """Why ``data`` cannot be sent to ``who`` as it is (empty when it can)."""
    size = image_size(data, mime)
    reasons: list[str] = []
    if mime not in accepted:
        reasons.append(f"{who} does not take {mime}")
    if size is not None and max_side and max(size) > max_side:
        reasons.append(f"it is {size[0]}x{size[1]} px, over {max_side} px on its long side")
    if size is not None and max_pixels and size[0] * size[1] > max_pixels:
        reasons.append(f"it has {size[0] * size[1]:,} pixels, over {max_pixels:,}")
    if len(data) > max_bytes:
        reasons.append(f"it is {_mb(len(data))}, over the {_mb(max_bytes)} limit")
    animated = mime == "image/gif" and _is_animated(data)
    if animated:
        reasons.append("it is an animated GIF")
    return reasons


def _open_upright(
    pil: Any, data: bytes, max_side: int | None, max_pixels: int | None
) -> tuple[Any, tuple[int, int], tuple[int, int]]:
    """The first frame of ``data`` in a working mode, turned as its EXIF says; its full
    (upright) size; and the size that fits the limits."""
    from PIL import ImageOps

    with pil.open(io.BytesIO(data)) as opened:
        opened.seek(0)
        width, height = opened.size
        turned = opened.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF says: rotate 90
        full = (height, width) if turned else (width, height)
        target = _scaled(full, max_side, max_pixels, 1.0)
        if opened.format == "JPEG" and target != full:
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale (never below the target): a 20 MP
            # photo then costs a fraction of a full decode.
            opened.draft(None, (target[1], target[0]) if turned else target)
        img = ImageOps.exif_transpose(_working_mode(opened))
    return img, full, target


def _scaled(
    size: tuple[int, int], max_side: int | None, max_pixels: int | None, extra: float
) -> tuple[int, int]:
    w, h = size
    scale = 1.0
    if max_side and max(w, h) > max_side:
        scale = max_side / max(w, h)
    if max_pixels and w * h * scale * scale > max_pixels:
        scale = math.sqrt(max_pixels / (w * h))
    scale *= extra
    if scale >= 1.0:
        return w, h
    # floor, so the long side never ends a pixel over the limit after rounding
    return max(1, int(w * scale)), max(1, int(h * scale))


def _is_animated(data: bytes) -> bool:
    try:
        from PIL import Image as PILImage
    except ImportError:
        return False
    try:
        with PILImage.open(io.BytesIO(data)) as img:
            return bool(getattr(img, "is_animated", False))
    except Exception:
        return False


def _working_mode(img: Any) -> Any:
    """One of L, LA, RGB, RGBA: the modes every resize filter and both encoders handle."""
    mode = img.mode
    if mode in _WORKING_MODES:
        return img
    if mode in ("P", "PA"):
        return img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I;16"):
        return img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if mode in ("I", "F"):
        return img.convert("L")
    return img.convert("RGBA" if "A" in mode else "RGB")


def _save(img: Any, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        if img.mode in ("RGBA", "LA"):
            # JPEG has no alpha: composite onto white, as a viewer would show it.
            from PIL import Image as PILImage

            background = PILImage.new("RGB", img.size, (255, 255, 255))
            background.paste(img.convert("RGBA"), mask=img.convert("RGBA").getchannel("A"))
            img = background
        elif img.mode not in ("L", "RGB"):
            img = img.convert("RGB")
        img.save(buf, "JPEG", quality=JPEG_QUALITY)
    else:
        img.save(buf, "PNG")
    return buf.getvalue()


def thumbnail(data: bytes, mime: str, side: int = 192) -> tuple[bytes, str] | None:
    """A small preview (PNG or JPEG) for notebooks, or None without Pillow or on bad data."""
    try:
        from PIL import Image as PILImage
    except ImportError:
        return None
    try:
        with PILImage.open(io.BytesIO(data)) as opened:
            img = _working_mode(opened)
            img.thumbnail((side, side))
            if mime in _PHOTO_MIMES:
                return _save(img, "JPEG"), "image/jpeg"
            return _save(img, "PNG"), "image/png"
    except Exception:
        return None


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"
