"""lm.Audio: sample arrays become 16-bit PCM WAV (checked by decoding with ``wave``), files
and bytes are typed from their content, and notebooks get a player."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

import llm_magics as lm
from llm_magics._media.objects import as_media_part
from tests.media_support import encoded_audio, tone, wav_of


def test_a_stereo_48khz_float_array_is_encoded_as_16_bit_stereo_wav() -> None:
    samples = np.zeros((48_000, 2), np.float32)
    samples[:, 0] = 0.5
    samples[:, 1] = -0.25
    samples[10] = (1.7, -3.0)  # out of range: clipped, not wrapped
    audio = lm.Audio(samples, rate=48_000)
    part = audio.to_media_part()
    assert (part.kind, part.mime_type) == ("audio", "audio/wav")
    channels, rate, frames, pcm = wav_of(part.data or b"")
    assert (channels, rate, frames) == (2, 48_000, 48_000)
    assert tuple(pcm[0]) == (16384, -8192)  # round(0.5 * 32767), round(-0.25 * 32767)
    assert tuple(pcm[10]) == (32767, -32767)
    assert (audio.rate, audio.channels, audio.duration) == (48_000, 2, 1.0)


def test_channels_first_arrays_are_transposed_to_frames_by_channels() -> None:
    left_right = np.stack([np.full(1000, 0.1), np.full(1000, -0.1)])  # shape (2, 1000)
    channels, _, frames, pcm = wav_of(lm.Audio(left_right, rate=8000).data)
    assert (channels, frames, tuple(pcm[0])) == (2, 1000, (3277, -3277))


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        (np.array([0, 1000, -1000], np.int16), [0, 1000, -1000]),
        (np.array([128, 255, 0], np.uint8), [0, 127 << 8, -32768]),
        (np.array([1, -1], np.int8), [256, -256]),
        (np.array([1 << 16, -(1 << 16)], np.int32), [1, -1]),
        (np.array([5, -5], np.int64), [5, -5]),
        ([0.0, 0.5, -1.0], [0, 16384, -32767]),  # a plain list is an array too
    ],
)
def test_integer_and_list_samples_are_rescaled_to_int16(
    samples: object, expected: list[int]
) -> None:
    _, _, _, pcm = wav_of(lm.Audio(samples, rate=8000).data)
    assert pcm[:, 0].tolist() == expected


@pytest.mark.parametrize(
    ("samples", "rate", "match"),
    [
        (np.zeros(100), None, r"needs its sample rate: lm.Audio\(samples, rate=16000\)"),
        (np.zeros(100), 0, "between 1 and"),
        (np.zeros(100), 44_100.5, "whole number"),
        (np.zeros(100), "fast", "rate= must be the sample rate in Hz"),
        (np.zeros((2, 3, 4)), 8000, r"1-D \(mono\) or 2-D"),
        (np.array([np.inf, 0.0]), 8000, "NaN or infinity"),
        (np.array([70_000, 0], np.int64), 8000, r"fit in int16.*floats in \[-1, 1\]"),
        (np.zeros(0), 8000, "empty"),
    ],
)
def test_bad_sample_arrays_and_rates_are_refused_saying_what_to_pass(
    samples: object, rate: object, match: str
) -> None:
    with pytest.raises(lm.ConfigError, match=match):
        lm.Audio(samples, rate=rate)  # type: ignore[arg-type]


def test_a_file_path_and_bytes_are_typed_from_their_content(tmp_path: Path) -> None:
    flac = encoded_audio("FLAC")
    path = tmp_path / "speech.wav"  # misnamed on purpose
    path.write_bytes(flac)
    part = lm.Audio(path).to_media_part()
    assert (part.mime_type, part.filename, part.data) == ("audio/flac", "speech.wav", flac)
    assert lm.Audio(encoded_audio("OGG")).to_media_part().mime_type == "audio/ogg"
    assert lm.Audio(encoded_audio("M4A")).to_media_part().mime_type == "audio/mp4"
    assert lm.Audio(path).duration is None  # only PCM WAV is measured


def test_rate_is_refused_for_sources_that_carry_their_own(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(lm.Audio(tone(), rate=16_000).data)
    with pytest.raises(lm.ConfigError, match="carries its own sample rate"):
        lm.Audio(str(path), rate=16_000)


def test_an_image_or_text_file_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp3"
    path.write_text("lyrics, not sound")
    with pytest.raises(lm.ConfigError, match=r"clip\.mp3.*not an image, audio or PDF"):
        lm.Audio(path).to_media_part()
    png = lm.Image(np.zeros((2, 2), np.uint8)).data
    with pytest.raises(lm.ConfigError, match="should be audio, but its content is image/png"):
        lm.Audio(png).to_media_part()


def test_an_ipython_audio_gives_its_wav_bytes_and_a_url_only_one_is_refused() -> None:
    from IPython.display import Audio as IPyAudio

    channels, rate, frames, _ = wav_of(lm.Audio(IPyAudio(tone(0.25, 8000), rate=8000)).data)
    assert (channels, rate, frames) == (1, 8000, 2000)
    with pytest.raises(lm.ConfigError, match="holds a URL"):
        lm.Audio(IPyAudio(url="https://example.org/a.wav"))


def test_audio_urls_are_refused_with_what_to_do_instead() -> None:
    with pytest.raises(lm.ConfigError, match="download the file and pass its path"):
        lm.Audio("https://example.org/talk.mp3")


def test_the_content_hash_is_the_sha256_of_the_wav_bytes() -> None:
    a = lm.Audio(tone(), rate=16_000)
    assert a.content_hash == hashlib.sha256(a.data).hexdigest()
    assert lm.Audio(tone(), rate=16_000).content_hash == a.content_hash
    assert lm.Audio(tone(), rate=22_050).content_hash != a.content_hash


def test_the_notebook_preview_is_a_player_with_duration_rate_and_channels() -> None:
    a = lm.Audio(tone(1.0, 16_000, channels=2), rate=16_000)
    html = a._repr_html_()
    src = re.search(r'<audio controls src="data:audio/wav;base64,([^"]+)"', html)
    assert src is not None and base64.b64decode(src.group(1)) == a.data
    assert "audio/wav · 1.00 s · 16000 Hz · 2 ch" in html


def test_as_media_part_takes_audio_objects_and_kind_audio_paths(tmp_path: Path) -> None:
    a = lm.Audio(tone(), rate=16_000)
    assert as_media_part(a) is a.to_media_part()
    path = tmp_path / "x.wav"
    path.write_bytes(a.data)
    assert as_media_part(str(path), kind="audio").data == a.data
    with pytest.raises(lm.ConfigError, match=r"needs its sample rate"):
        as_media_part(tone(), kind="audio")


def test_transcribe_refuses_an_image_before_sending() -> None:
    c = lm.client("openai:gpt-4o-mini", api_key="sk-test")
    with pytest.raises(lm.ConfigError, match="should be audio"):
        c.transcribe(lm.Image(np.zeros((2, 2), np.uint8)).data)
