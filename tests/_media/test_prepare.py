"""Per-provider limits: what each provider receives for a given image or clip (downscaled,
re-encoded, converted, downloaded, or refused with the reason), via ``media.prepare_for``."""

from __future__ import annotations

import dataclasses
import io
import sys

import numpy as np
import pytest
from PIL import Image as PILImage

import llm_magics as lm
from llm_magics._core.session import SESSION
from llm_magics._media import objects as media
from llm_magics._media.prepare import DEFAULT_POLICY, MediaPolicies, policy_for
from tests.media_support import decode_image, encoded_audio, image_bytes, serve, tone, wav_of

# 20 megapixels, a phone photo's shape.
PHOTO_W, PHOTO_H = 5472, 3648


@pytest.fixture(scope="module")
def photo_20mp() -> bytes:
    return image_bytes(PHOTO_W, PHOTO_H, "JPEG")


@pytest.mark.parametrize(
    ("provider", "size"),
    [
        ("openai", (2048, 1365)),
        ("groq", (2048, 1365)),
        ("anthropic", (1568, 1045)),
        ("gemini", (3072, 2048)),
        ("ollama", (2048, 1365)),
        ("some-vllm-server", (2048, 1365)),
    ],
)
def test_a_20_megapixel_photo_is_downscaled_to_the_providers_long_side_keeping_its_aspect(
    photo_20mp: bytes, provider: str, size: tuple[int, int]
) -> None:
    part = media.prepare_for(photo_20mp, provider)
    img = decode_image(part.data or b"")
    assert (part.mime_type, img.format, img.size) == ("image/jpeg", "JPEG", size)
    assert abs(size[0] / size[1] - PHOTO_W / PHOTO_H) < 0.002
    assert len(part.data or b"") <= policy_for(provider).max_image_bytes


def test_a_kernels_own_media_limit_applies_until_the_session_is_reset() -> None:
    policies = SESSION.get(MediaPolicies)
    policies["ollama"] = dataclasses.replace(policies["ollama"], max_side=512)
    part = media.prepare_for(image_bytes(2000, 1000), "ollama")
    assert decode_image(part.data or b"").size == (512, 256)
    SESSION.reset()
    assert policy_for("ollama").max_side == 2048
    assert media.prepare_for(image_bytes(2000, 1000), "ollama").data == image_bytes(2000, 1000)


def test_an_image_within_the_limits_is_sent_byte_for_byte() -> None:
    png = image_bytes(800, 600)
    for provider in ("openai", "anthropic", "gemini", "ollama"):
        assert media.prepare_for(png, provider).data == png


def test_a_resized_png_stays_png() -> None:
    part = media.prepare_for(image_bytes(4000, 1000), "anthropic")
    assert (part.mime_type, decode_image(part.data or b"").size) == ("image/png", (1568, 392))


@pytest.fixture(scope="module")
def noisy_png() -> bytes:
    return image_bytes(600, 600, noise=True)  # ~1.1 MB of incompressible PNG


def test_a_png_over_the_byte_limit_becomes_a_jpeg_under_it(noisy_png: bytes) -> None:
    tight = dataclasses.replace(policy_for("anthropic"), max_image_bytes=len(noisy_png) // 2)
    part = media.prepare_for(noisy_png, tight)
    img = decode_image(part.data or b"")
    assert (part.mime_type, img.size) == ("image/jpeg", (600, 600))
    assert len(part.data or b"") <= len(noisy_png) // 2


def test_a_jpeg_still_too_big_is_scaled_down_until_it_fits(noisy_png: bytes) -> None:
    tight = dataclasses.replace(policy_for("openai"), max_image_bytes=40_000)
    part = media.prepare_for(noisy_png, tight)
    img = decode_image(part.data or b"")
    assert part.mime_type == "image/jpeg" and len(part.data or b"") <= 40_000
    assert img.size[0] == img.size[1] < 600


def test_a_photo_turned_by_its_exif_orientation_is_sent_upright_and_downscaled() -> None:
    photo = PILImage.open(io.BytesIO(image_bytes(4000, 3000, "JPEG")))
    exif = photo.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buf = io.BytesIO()
    photo.save(buf, "JPEG", exif=exif.tobytes())
    part = media.prepare_for(buf.getvalue(), "anthropic")
    assert decode_image(part.data or b"").size == (1176, 1568)


def test_webp_goes_as_is_where_accepted_and_as_png_to_ollama() -> None:
    webp = image_bytes(100, 80, "WEBP")
    assert media.prepare_for(webp, "openai").mime_type == "image/webp"
    assert media.prepare_for(webp, "gemini").mime_type == "image/webp"
    part = media.prepare_for(webp, "ollama")
    assert (part.mime_type, decode_image(part.data or b"").size) == ("image/png", (100, 80))


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_bmp_and_tiff_are_converted_to_png_for_every_provider(fmt: str) -> None:
    data = image_bytes(50, 40, fmt)
    for provider in ("openai", "anthropic", "gemini", "ollama"):
        part = media.prepare_for(data, provider)
        assert (part.mime_type, decode_image(part.data or b"").size) == ("image/png", (50, 40))


def test_avif_photos_become_jpeg_where_avif_is_not_taken() -> None:
    part = media.prepare_for(image_bytes(64, 64, "AVIF"), "openai")
    assert (part.mime_type, decode_image(part.data or b"").size) == ("image/jpeg", (64, 64))


def test_an_animated_gif_becomes_a_png_of_its_first_frame() -> None:
    frames = [PILImage.new("RGB", (20, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    part = media.prepare_for(buf.getvalue(), "openai")
    img = decode_image(part.data or b"")
    assert (part.mime_type, img.size, img.convert("RGB").getpixel((0, 0))) == (
        "image/png",
        (20, 10),
        (255, 0, 0),
    )
    still = io.BytesIO()
    frames[0].save(still, "GIF")
    assert media.prepare_for(still.getvalue(), "openai").data == still.getvalue()


HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64


def test_heic_goes_to_gemini_as_is_and_elsewhere_needs_pillow_heif_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # as on a machine without it
    assert media.prepare_for(HEIC, "gemini").mime_type == "image/heic"
    with pytest.raises(lm.ConfigError, match=r"HEIC/HEIF.*pip install pillow-heif"):
        media.prepare_for(HEIC, "anthropic")


def test_without_pillow_an_oversized_image_is_refused_naming_the_reason_and_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    big = image_bytes(3000, 100)
    for name in [m for m in sys.modules if m == "PIL" or m.startswith("PIL.")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(
        lm.ConfigError,
        match=r"to Anthropic \(it is 3000x100 px, over 1568 px.*pip install 'llm-magics\[media\]'",
    ):
        media.prepare_for(big, "anthropic")
    assert media.prepare_for(big, "gemini").data == big  # fits: no Pillow needed


# --- audio ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["FLAC", "OGG", "M4A"])
def test_flac_ogg_and_m4a_become_wav_for_openai_with_the_same_rate_and_length(fmt: str) -> None:
    pytest.importorskip("av" if fmt == "M4A" else "soundfile")
    part = media.prepare_for(encoded_audio(fmt, seconds=0.5, rate=16_000), "openai")
    channels, rate, frames, pcm = wav_of(part.data or b"")
    assert (part.mime_type, channels, rate) == ("audio/wav", 1, 16_000)
    assert 8000 <= frames <= 8000 + 2048  # AAC adds priming samples
    assert np.abs(pcm).max() > 10_000  # the tone survived, not silence


def test_gemini_takes_ogg_and_flac_as_they_are() -> None:
    pytest.importorskip("soundfile")
    for fmt, mime in (("OGG", "audio/ogg"), ("FLAC", "audio/flac")):
        data = encoded_audio(fmt)
        part = media.prepare_for(data, "gemini")
        assert (part.mime_type, part.data) == (mime, data)


def test_with_no_decoder_installed_conversion_is_refused_with_the_reason_and_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("soundfile")
    flac = encoded_audio("FLAC")
    monkeypatch.setitem(sys.modules, "soundfile", None)
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(lm.ConfigError) as info:
        media.prepare_for(flac, "openai")
    assert str(info.value).startswith("OpenAI takes audio as mpeg, wav; the audio")
    assert "audio/flac and no audio decoder is installed" in str(info.value)
    assert "pip install soundfile" in str(info.value) and "pip install av" in str(info.value)


def test_undecodable_audio_is_refused_with_each_decoders_complaint() -> None:
    pytest.importorskip("soundfile")
    broken = b"OggS" + b"\x00" * 200
    with pytest.raises(
        lm.ConfigError, match=r"could not be decoded.*soundfile: .*Convert it to WAV"
    ):
        media.prepare_for(broken, "openai")


def test_audio_over_the_inline_limit_is_refused_pointing_at_transcribe() -> None:
    tight = dataclasses.replace(policy_for("openai"), max_audio_bytes=10_000)
    with pytest.raises(lm.ConfigError, match=r"at most 0 MB of audio inline.*transcribe"):
        media.prepare_for(lm.Audio(tone(1.0), rate=16_000), tight)


def test_providers_without_audio_or_documents_say_what_they_take() -> None:
    with pytest.raises(
        lm.ConfigError, match=r"Anthropic does not take audio input; the audio \(audio/wav"
    ):
        media.prepare_for(lm.Audio(tone(), rate=8000), "anthropic")
    with pytest.raises(lm.ConfigError, match="Ollama does not take documents"):
        media.prepare_for(b"%PDF-1.4\n%%EOF", "ollama")


# --- URLs -------------------------------------------------------------------------------------


def test_urls_pass_through_to_providers_that_fetch_them_and_are_downloaded_for_others() -> None:
    png = image_bytes(30, 20)
    with serve({"/cat": (200, png, "application/octet-stream")}) as server:
        url = f"{server.base}/cat"
        for provider in ("openai", "groq", "anthropic", "gemini"):
            kept = media.prepare_for(lm.Image(url), provider)
            assert (kept.url, kept.data) == (url, None)
        assert server.hits == []
        fetched = media.prepare_for(lm.Image(url), "ollama")
        assert server.hits == ["/cat"]
    # typed from the content, not the URL or the Content-Type header
    assert (fetched.mime_type, fetched.data, fetched.filename) == ("image/png", png, "cat")


def test_a_url_image_over_the_limit_is_downloaded_then_downscaled() -> None:
    with serve({"/big.png": (200, image_bytes(3000, 1000), "image/png")}) as server:
        part = media.prepare_for(f"{server.base}/big.png", "ollama")
    assert decode_image(part.data or b"").size == (2048, 682)


def test_image_data_of_a_url_downloads_once_and_keeps_the_url_as_the_cache_identity() -> None:
    png = image_bytes(12, 10)
    with serve({"/a.png": (200, png, "image/png")}) as server:
        img = lm.Image(f"{server.base}/a.png")
        url_hash = img.content_hash
        assert img.data == png and img.size == (12, 10) and img.mime_type == "image/png"
        assert server.hits == ["/a.png"]
    assert img.content_hash == url_hash


@pytest.mark.parametrize(
    ("route", "match"),
    [
        ((404, b"gone", "text/html"), r"could not fetch the image at .*/x: HTTP 404"),
        ((200, b"<html>a login page</html>", "text/html"), r"the image at .*/x is not an image"),
        (
            (200, image_bytes(40, 40, noise=True)[:200], "image/png"),
            r"the image at .*/x is not a valid image/png",
        ),
    ],
)
def test_a_bad_url_is_refused_before_the_provider_is_called(
    route: tuple[int, bytes, str], match: str
) -> None:
    with serve({"/x": route}) as server, pytest.raises(lm.ConfigError, match=match):
        media.prepare_for(f"{server.base}/x", "ollama")


def test_an_unreachable_url_is_a_config_error_naming_the_url() -> None:
    with serve({}) as server:
        dead = server.base
    with pytest.raises(
        lm.ConfigError, match=rf"could not fetch the image at {dead}/gone.png: Connect"
    ):
        media.prepare_for(f"{dead}/gone.png", "ollama")


# --- which policy ----------------------------------------------------------------------------


def test_policies_are_found_by_name_then_protocol_and_a_provider_may_carry_its_own() -> None:
    lm.register("mycloud", "http://127.0.0.1:9/v1", protocol="anthropic")
    lm.register("myllama", "http://127.0.0.1:9/v1")
    anthropic_like = lm.client("mycloud:claude", api_key="k")
    assert policy_for(anthropic_like.provider).max_side == 1568
    assert policy_for(anthropic_like.provider).label == "mycloud"
    generic = policy_for(lm.client("myllama:m").provider)
    assert (generic.image_urls, generic.image_mimes) == (False, DEFAULT_POLICY.image_mimes)
    provider = lm.client("ollama:llava").provider
    custom = dataclasses.replace(policy_for(provider), max_side=100)
    provider.media_policy = custom  # type: ignore[attr-defined]
    assert policy_for(provider) is custom
    assert media.prepare_for(image_bytes(400, 200), provider).data is not None
    assert decode_image(media.prepare_for(image_bytes(400, 200), provider).data or b"").size == (
        100,
        50,
    )
