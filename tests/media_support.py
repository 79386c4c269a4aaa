"""Shared pieces of the media tests: real image/audio files made with Pillow, numpy, wave and
soundfile; a real local HTTP server for URL images; schema-valid answers for each provider;
and spec-validating clients (every request body is checked by SpecTransport)."""

from __future__ import annotations

import base64
import io
import threading
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import numpy as np
from PIL import Image as PILImage

import llm_magics as lm
from llm_magics._runtime.retry import RetryPolicy
from tests.support.specs import SpecTransport

Handler = Callable[[httpx2.Request], httpx2.Response]
MODELS = {
    "openai": "gpt-4o-mini",
    "groq": "meta-llama/llama-4-scout-17b-16e-instruct",
    "cerebras": "llama-3.3-70b",
    "anthropic": "claude-haiku-4-5",
    "gemini": "gemini-2.5-flash",
    "ollama": "llama3.2-vision",
}


# --- real files ---------------------------------------------------------------------------


def image_bytes(
    width: int, height: int, fmt: str = "PNG", mode: str = "RGB", noise: bool = False
) -> bytes:
    """An image that is a real file of ``fmt``: a gradient (compresses well) or noise."""
    if noise:
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        img = PILImage.fromarray(pixels)
    else:
        x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
        y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
        img = PILImage.fromarray(np.stack([x, y, 255 - x], axis=2))
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def decode_image(data: bytes) -> PILImage.Image:
    img = PILImage.open(io.BytesIO(data))
    img.load()
    return img


def from_data_url(url: str) -> tuple[str, bytes]:
    header, _, payload = url.partition(",")
    return header[5:].split(";")[0], base64.b64decode(payload)


def wav_of(data: bytes) -> tuple[int, int, int, np.ndarray]:
    """(channels, rate, frames, int16 samples as frames x channels) of a WAV file."""
    with wave.open(io.BytesIO(data), "rb") as w:
        channels, rate, frames = w.getnchannels(), w.getframerate(), w.getnframes()
        assert w.getsampwidth() == 2
        samples = np.frombuffer(w.readframes(frames), dtype="<i2").reshape(-1, channels)
    return channels, rate, frames, samples


def tone(seconds: float = 0.5, rate: int = 16_000, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.4 * np.sin(2 * np.pi * 440 * t)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


def encoded_audio(fmt: str, seconds: float = 0.5, rate: int = 16_000) -> bytes:
    """A real FLAC / OGG (libsndfile) or M4A (AAC via PyAV) file."""
    samples = tone(seconds, rate).astype(np.float32)
    if fmt in ("FLAC", "OGG"):
        import soundfile

        buf = io.BytesIO()
        soundfile.write(buf, samples, rate, format=fmt)
        return buf.getvalue()
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


# --- a real HTTP server for URL images ----------------------------------------------------


@dataclass
class Served:
    base: str
    hits: list[str]


@contextmanager
def serve(routes: dict[str, tuple[int, bytes, str]]) -> Iterator[Served]:
    """A threaded HTTP server on 127.0.0.1 answering ``path -> (status, body, content-type)``."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            status, body, ctype = routes.get(self.path, (404, b"not found", "text/plain"))
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_address[1]}", hits)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- schema-valid answers per provider ----------------------------------------------------


def answer_body(provider: str, text: str = "A picture.") -> dict[str, Any]:
    model = MODELS[provider]
    if provider == "anthropic":
        return {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text, "citations": None}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 3},
        }
    if provider == "gemini":
        return {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}],
            "modelVersion": model,
        }
    if provider == "ollama":
        return {
            "model": model,
            "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": text},
            "done": True,
            "done_reason": "stop",
        }
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if provider == "openai":
        message["refusal"] = None  # required by OpenAI's spec, unknown to Groq's
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }


def client_for(
    provider: str,
    handler: Handler | None = None,
    *,
    validate_responses: bool = True,
    **options: Any,
) -> tuple[lm.Client, SpecTransport]:
    """A client whose every request is validated against ``provider``'s spec; the default
    handler answers with a schema-valid message."""
    transport = SpecTransport(
        provider,
        handler or (lambda request: httpx2.Response(200, json=answer_body(provider))),
        validate_responses=validate_responses,
    )
    c = lm.client(
        f"{provider}:{MODELS[provider]}",
        api_key=None if provider == "ollama" else "sk-test",
        transport=transport,
        cache=options.pop("cache", False),
        retry=RetryPolicy(max_retries=0),
        **options,
    )
    return c, transport
