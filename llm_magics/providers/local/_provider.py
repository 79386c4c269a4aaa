"""The local provider: the embedded SmolLM2 for chat, streaming and embeddings, and Whisper
tiny.en for transcription, every call run on the one worker thread."""

from __future__ import annotations

import io
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

from ..._core.errors import ConfigError
from ..._core.secrets import APIKey
from ..._core.types import ChatRequest, MediaPart, Response, Transcript, Usage
from ..._local import model as embedded
from ..._runtime.http import Timeouts
from ..base import Provider
from ._generate import generate
from ._plan import LLAMA_OPTIONS, _Plan

WHISPER_NAME = "whisper-tiny.en"


class LocalProvider(Provider):
    """The embedded SmolLM2 + Whisper tiny.en. See the module docstring for what it does."""

    protocol: ClassVar[str] = "local"
    supports_stream = True
    supports_tools = True
    supports_schema = True
    supports_embed = True
    supports_transcribe = True
    media_kinds = frozenset()
    extra_body_fields = LLAMA_OPTIONS

    def check_media(self, request: ChatRequest) -> None:
        for message in request.messages:
            for part in message.parts:
                if isinstance(part, MediaPart):
                    other = (
                        "for speech, use client.transcribe(audio) (local Whisper) and send the text"
                        if part.kind == "audio"
                        else "use a vision model such as openai:gpt-4o-mini, "
                        "anthropic:claude-haiku-4-5, gemini:gemini-2.5-flash or ollama:llava"
                    )
                    raise ConfigError(
                        f"local (SmolLM2-135M) takes text only, not {part.kind} input "
                        f"({part.mime_type}); {other}.",
                        provider=self.name,
                        model=request.model,
                    )

    # --- chat ----------------------------------------------------------------------------

    async def chat(self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts) -> Response:
        plan = _Plan.build(self, request)
        result = await embedded.worker.call(
            lambda cancel: generate(plan, None, cancel, timeouts.total, per_token=False)
        )
        return plan.response(result)

    async def stream(
        self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts
    ) -> AsyncIterator[str | Response]:
        plan = _Plan.build(self, request)
        if plan.tools:
            # The answer is a JSON envelope until the grammar ends it; stream the outcome.
            response = await self.chat(request, key, timeouts)
            if response.text:
                yield response.text
            yield response
            return
        async for item in embedded.worker.stream(
            lambda emit, cancel: generate(plan, emit, cancel, timeouts.idle, per_token=True)
        ):
            if isinstance(item, embedded.Done):
                yield plan.response(item.value)
            else:
                yield item

    # --- embeddings, audio, models -------------------------------------------------------

    def default_embed_model(self) -> str:
        return self.default_model or "smollm2-135m"

    async def embed(
        self, model: str, texts: Sequence[str], key: APIKey | None, timeouts: Timeouts
    ) -> tuple[list[list[float]], Usage]:
        items = list(texts)
        for i, text in enumerate(items):
            if not text:
                # llama.cpp fails to decode zero tokens and corrupts its heap doing so.
                raise ConfigError(
                    f"embed() got an empty string at position {i}; the local model cannot "
                    "embed empty text. Drop it or replace it with a placeholder.",
                    provider=self.name,
                    model=model,
                )
        if not items:
            return [], Usage()

        def run(cancel: threading.Event) -> tuple[list[list[float]], Usage]:
            llama, lock = embedded.embedding_model()
            with lock:
                vectors, count = llama.embed(
                    items, normalize=True, truncate=True, return_count=True
                )
            return [[float(x) for x in v] for v in vectors], Usage(input_tokens=int(count))

        return await embedded.worker.call(run)

    def default_transcribe_model(self) -> str:
        return WHISPER_NAME

    async def transcribe(
        self,
        model: str,
        audio: MediaPart,
        key: APIKey | None,
        timeouts: Timeouts,
        *,
        language: str | None = None,
        translate: bool = False,
        timestamps: bool = False,
        prompt: str | None = None,
    ) -> Transcript:
        if audio.data is None:
            raise self.unsupported("audio by URL", "Pass the audio as a file, bytes or array.")
        data = audio.data

        def run(cancel: threading.Event) -> Transcript:
            whisper, lock = embedded.whisper_model()
            if not whisper.model.is_multilingual and (translate or language not in (None, "en")):
                asked = "translation" if translate else f"language={language!r}"
                raise ConfigError(
                    f"the local Whisper model ({embedded.whisper_path().name}) is English-only "
                    f"and cannot do {asked}. Use openai: or groq: Whisper, or point "
                    f"{embedded.WHISPER_ENV} at a multilingual CTranslate2 Whisper model.",
                    provider=self.name,
                    model=model,
                )
            with lock:
                try:
                    segments, info = whisper.transcribe(
                        io.BytesIO(data),
                        language=language,
                        task="translate" if translate else "transcribe",
                        word_timestamps=timestamps,
                        initial_prompt=prompt,
                    )
                except Exception as exc:  # PyAV's decode errors have no common base to name
                    raise ConfigError(
                        f"the local Whisper could not decode the audio ({audio.mime_type}, "
                        f"{len(data)} bytes): {exc}",
                        provider=self.name,
                        model=model,
                    ) from exc
                found = []
                for segment in segments:  # lazy: decoding happens while iterating
                    found.append(segment)
                    if cancel.is_set():
                        break
            return _transcript(found, info, timestamps)

        return await embedded.worker.call(run)

    async def list_models(self, key: APIKey | None, timeouts: Timeouts) -> list[str]:
        path = embedded.gguf_path()
        chat = self.default_embed_model() if path.name == embedded.GGUF_NAME else path.stem
        return [chat, WHISPER_NAME]


def _transcript(segments: list[Any], info: Any, timestamps: bool) -> Transcript:
    text = "".join(s.text for s in segments).strip()
    rows: list[dict[str, Any]] = []
    words: list[dict[str, Any]] = []
    if timestamps:
        for s in segments:
            rows.append(
                {"id": s.id, "start": float(s.start), "end": float(s.end), "text": s.text.strip()}
            )
            words.extend(
                {
                    "word": w.word.strip(),
                    "start": float(w.start),
                    "end": float(w.end),
                    "probability": float(w.probability),
                }
                for w in s.words or []
            )
    return Transcript(
        text, segments=rows, words=words, language=info.language, duration=float(info.duration)
    )
