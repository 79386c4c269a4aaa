"""Sample work behind :class:`llm_magics._media.objects.Audio`: numpy arrays to 16-bit PCM WAV (with
the stdlib ``wave`` module), reading WAV headers, and decoding other formats (ogg, flac, m4a,
aac, webm...) to WAV for providers that only take WAV or MP3.

Decoders are optional and imported inside functions: ``soundfile`` (libsndfile: wav, flac,
ogg, aiff, mp3) first, then PyAV (``av``, installed with faster-whisper: anything FFmpeg
reads). Every function is pure, so all are thread-safe.
"""

from __future__ import annotations

import importlib
import io
import wave
from dataclasses import dataclass
from typing import Any

from .._core.errors import ConfigError
from .image import require_numpy

__all__ = ["WavInfo", "array_to_wav", "decode_to_wav", "pcm_to_wav", "wav_info"]

_MAX_RATE = 768_000


@dataclass(frozen=True)
class WavInfo:
    channels: int
    rate: int
    frames: int
    sample_width: int

    @property
    def duration(self) -> float:
        return self.frames / self.rate if self.rate else 0.0


def check_rate(rate: Any) -> int:
    """A sample rate as a positive int; a clear error for anything else."""
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate != rate:  # NaN
        raise ConfigError(f"rate= must be the sample rate in Hz, e.g. rate=16000; got {rate!r}")
    if rate != int(rate) or not 1 <= rate <= _MAX_RATE:
        raise ConfigError(
            f"rate= must be a whole number of samples per second between 1 and {_MAX_RATE}; "
            f"got {rate!r}"
        )
    return int(rate)


def array_to_wav(arr: Any, rate: int) -> bytes:
    """Samples as a 16-bit PCM WAV file.

    Shapes: (frames,) mono; (frames, channels), or (channels, frames) when the first axis is
    the short one (librosa's convention). Float samples are taken as [-1, 1] and clipped
    outside it; int16 is kept; uint8/int8/int32 are rescaled; other integer arrays must fit
    in int16.
    """
    np = require_numpy("an audio array")
    a = np.asarray(arr)
    if a.ndim == 1:
        a = a[:, None]
    elif a.ndim == 2:
        if a.shape[0] <= 8 and a.shape[1] > a.shape[0]:
            a = a.T
    else:
        raise ConfigError(
            f"an audio array must be 1-D (mono) or 2-D (frames x channels); got shape {a.shape}"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ConfigError(f"the audio array is empty (shape {a.shape})")
    if a.shape[1] > 64:
        raise ConfigError(
            f"the audio array has {a.shape[1]} channels (shape {a.shape}); pass frames x "
            "channels with at most a few channels"
        )
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ConfigError("the audio array contains NaN or infinity; clean it first")
        pcm = np.round(np.clip(a, -1.0, 1.0) * 32767.0).astype("<i2")
    elif a.dtype == np.int16:
        pcm = a.astype("<i2")
    elif a.dtype == np.uint8:
        pcm = ((a.astype(np.int32) - 128) << 8).astype("<i2")
    elif a.dtype == np.int8:
        pcm = (a.astype(np.int32) << 8).astype("<i2")
    elif a.dtype == np.int32:
        pcm = (a >> 16).astype("<i2")
    elif np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min()), int(a.max())
        if lo < -32768 or hi > 32767:
            raise ConfigError(
                f"integer audio samples must fit in int16; this {a.dtype} array spans "
                f"[{lo}, {hi}]. Pass floats in [-1, 1] instead."
            )
        pcm = a.astype("<i2")
    else:
        raise ConfigError(f"audio arrays must hold floats or integers; got dtype {a.dtype}")
    return pcm_to_wav(np.ascontiguousarray(pcm).tobytes(), channels=a.shape[1], rate=rate)


def pcm_to_wav(frames: bytes, *, channels: int, rate: int) -> bytes:
    """Interleaved little-endian int16 frames as a WAV file."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buf.getvalue()


def wav_info(data: bytes) -> WavInfo | None:
    """Channels, rate and length of a PCM WAV, or None when ``wave`` cannot read it (float or
    extensible WAVs; those are still sent as they are)."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            return WavInfo(w.getnchannels(), w.getframerate(), w.getnframes(), w.getsampwidth())
    except (wave.Error, EOFError, ValueError):
        return None


def decode_to_wav(data: bytes, mime: str, *, what: str, why: str) -> bytes:
    """Decode any audio format a decoder here reads into 16-bit PCM WAV (same rate; more than
    two channels are mixed down to stereo by PyAV). ``why`` says who needs WAV."""
    failures: list[str] = []
    decoders = 0
    soundfile = _optional("soundfile")
    if soundfile is not None:
        decoders += 1
        try:
            samples, rate = soundfile.read(io.BytesIO(data), dtype="int16", always_2d=True)
            if len(samples):
                return pcm_to_wav(samples.tobytes(), channels=samples.shape[1], rate=int(rate))
            failures.append("soundfile: no samples")
        except Exception as exc:  # libsndfile reports unknown formats as RuntimeError/TypeError
            failures.append(f"soundfile: {exc}")
    av = _optional("av")
    if av is not None:
        decoders += 1
        try:
            return _decode_av(av, data)
        except ConfigError:
            raise
        except Exception as exc:  # PyAV raises its own FFmpegError family and ValueError
            failures.append(f"PyAV: {exc}")
    if not decoders:
        raise ConfigError(
            f"{why}; {what} is {mime} and no audio decoder is installed to convert it: "
            "pip install soundfile (wav, flac, ogg) or pip install av (m4a, aac, mp3, webm), "
            "or convert the file to WAV yourself"
        )
    raise ConfigError(
        f"{why}; {what} is {mime} and could not be decoded to convert it "
        f"({'; '.join(failures)}). Convert it to WAV yourself (e.g. with ffmpeg or sox)."
    )


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _decode_av(av: Any, data: bytes) -> bytes:
    with av.open(io.BytesIO(data)) as container:
        streams = list(container.streams.audio)
        if not streams:
            raise ConfigError("the file has no audio stream")
        stream = streams[0]
        channels = 2 if len(stream.layout.channels) >= 2 else 1
        rate = int(stream.rate or stream.codec_context.sample_rate)
        resampler = av.AudioResampler(
            format="s16", layout="stereo" if channels == 2 else "mono", rate=rate
        )
        chunks: list[bytes] = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().tobytes())
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().tobytes())
    pcm = b"".join(chunks)
    if not pcm:
        raise ConfigError("the file decodes to no samples")
    return pcm_to_wav(pcm, channels=channels, rate=rate)
