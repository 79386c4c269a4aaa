"""``local``: the embedded model, answering with no key and no network.

Chat, streaming, structured output and tool calls run SmolLM2-135M-Instruct through
llama-cpp-python; embeddings come from a second ``Llama(embedding=True)`` on the same GGUF
(mean-pooled over the tokens, L2-normalised, 576 dimensions, texts truncated at 512 tokens);
``transcribe`` runs Whisper tiny.en through faster-whisper. The files come from the installed
``[local]`` extra (see :mod:`llm_magics._local.model`); nothing is downloaded.

* The prompt is rendered with the chat template embedded in the GGUF. With no system message,
  the bundled SmolLM2 gets ``"You are a helpful assistant. Answer concisely."`` instead of its
  template's default, under which it answers simple questions badly.
* ``schema=`` and ``json_mode=True`` are grammar-constrained: llama.cpp can only sample tokens
  that keep the answer valid for the JSON schema (``raw["grammar"]`` says ``"schema"``; a
  schema llama-cpp-python cannot turn into a grammar falls back to any-JSON, ``"json"``).
* Tools work the same way: the tools are described in the system message and a grammar lets
  the model answer only ``{"tool": NAME, "arguments": {...}}`` for one of them, or (with
  ``tool_choice`` auto) ``{"answer": ...}``. A 135M model picks tools unreliably; the
  mechanics are sound for any GGUF set with ``LLM_MAGICS_LOCAL_MODEL``.
* Sampling: the request's temperature, top_p, seed and stop go to llama.cpp; otherwise
  llama-cpp-python's chat defaults (temperature 0.2, top_p 0.95, top_k 40, min_p 0.05).
  ``max_tokens`` defaults to 1024 (a small model can repeat itself until the context is full).
  Extra llama.cpp options: top_k, min_p, typical_p, repeat_penalty, presence_penalty,
  frequency_penalty, mirostat_mode, mirostat_tau, mirostat_eta.
* ``timeout=`` counts generation time only (not the wait behind other calls): the whole answer
  for ``chat``, the silence between two tokens for ``stream``.
* Usage comes from llama.cpp's count; for a stream the output count is the streamed text
  re-tokenised. Cost is 0.

Thread safety: one model per process, every call on one worker thread (see
:mod:`llm_magics._local.model`); an interrupted stream or cancelled call stops generating at
the next token and frees the model.
"""

from __future__ import annotations

import functools
import io
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .._core.errors import ConfigError, ContextLengthError, TimeoutError
from .._core.secrets import APIKey
from .._core.types import ChatRequest, MediaPart, Message, Response, ToolCall, Transcript, Usage
from .._local import model as embedded
from .._runtime.http import Timeouts
from .base import Provider

__all__ = ["DEFAULT_MAX_TOKENS", "LocalProvider"]

DEFAULT_MAX_TOKENS = 1024
_SAMPLING_DEFAULTS = {"temperature": 0.2, "top_p": 0.95, "top_k": 40, "min_p": 0.05}
_LLAMA_OPTIONS = frozenset(
    {
        "top_k",
        "min_p",
        "typical_p",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
        "mirostat_mode",
        "mirostat_tau",
        "mirostat_eta",
    }
)
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
    extra_body_fields = _LLAMA_OPTIONS

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
            lambda cancel: _generate(plan, None, cancel, timeouts.total, per_token=False)
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
            lambda emit, cancel: _generate(plan, emit, cancel, timeouts.idle, per_token=True)
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


# --- turning a request into a generation ----------------------------------------------------


@dataclass
class _Plan:
    """What to generate, worked out (and checked) before the request reaches the worker."""

    provider: str
    request: ChatRequest
    tools: dict[str, dict[str, Any]]  # name -> JSON schema of its arguments, when tools apply
    grammar_schema: dict[str, Any] | None  # constrain the output to this JSON schema
    any_json: bool
    sampling: dict[str, Any]

    @classmethod
    def build(cls, provider: LocalProvider, request: ChatRequest) -> _Plan:
        provider.check_media(request)
        unknown = sorted(set(request.extra) - _LLAMA_OPTIONS)
        if unknown:
            raise ConfigError(
                f"local does not understand option(s) {', '.join(unknown)}; besides system, "
                "temperature, max_tokens, top_p, stop, seed, schema and tools it takes "
                f"{', '.join(sorted(_LLAMA_OPTIONS))}.",
                provider=provider.name,
                model=request.model,
            )
        sampling = dict(_SAMPLING_DEFAULTS)
        if request.temperature is not None:
            sampling["temperature"] = request.temperature
        if request.top_p is not None:
            sampling["top_p"] = request.top_p
        sampling.update(request.extra)
        tools: dict[str, dict[str, Any]] = {}
        choice = request.tool_choice
        if request.tools and choice != "none":
            tools = {t.name: t.parameters for t in request.tools}
            if isinstance(choice, dict):
                choice = (choice.get("function") or choice).get("name")
            if isinstance(choice, str) and choice not in ("auto", "required"):
                if choice not in tools:
                    raise ConfigError(
                        f"tool_choice={choice!r} names no tool given in tools= "
                        f"({', '.join(tools)}).",
                        provider=provider.name,
                        model=request.model,
                    )
                tools = {choice: tools[choice]}
        schema = request.schema.json_schema if request.schema is not None else None
        plan = cls(provider.name, request, tools, schema, request.json_mode, sampling)
        if tools:
            plan.grammar_schema = _tool_envelope(tools, schema, answer=choice in (None, "auto"))
        return plan

    def messages(self, default_system: str | None) -> list[dict[str, str]]:
        """Plain role/content messages for the chat template."""
        system = [self.request.system] if self.request.system else []
        out: list[dict[str, str]] = []
        names: dict[str, str] = {}
        for m in self.request.messages:
            if m.role == "system":
                system.append(m.text)
            elif m.role == "tool":
                name = names.get(m.tool_call_id or "", m.name or "the tool")
                out.append({"role": "user", "content": f"Result of {name}: {m.text}"})
            else:
                out.append({"role": m.role, "content": self._content(m, names)})
        if self.tools:
            system.append(_tool_instructions(self.request, self.tools))
        if not system and default_system:
            system.append(default_system)
        if system:
            out.insert(0, {"role": "system", "content": "\n\n".join(system)})
        return out

    @staticmethod
    def _content(m: Message, names: dict[str, str]) -> str:
        calls = []
        for call in m.tool_calls:
            names[call.id] = call.name
            calls.append(json.dumps({"tool": call.name, "arguments": call.arguments}))
        return "\n".join([m.text, *calls]) if m.text else "\n".join(calls)

    def response(self, result: _Generation) -> Response:
        text, calls, finish = result.text, [], result.finish_reason
        if self.tools and finish == "stop":
            try:
                envelope = json.loads(text)
            except ValueError:
                envelope = None
            if isinstance(envelope, dict) and envelope.get("tool") in self.tools:
                calls = [
                    ToolCall.from_raw(
                        f"call_{uuid.uuid4().hex[:12]}",
                        envelope["tool"],
                        envelope.get("arguments") or {},
                    )
                ]
                text, finish = "", "tool_calls"
            elif isinstance(envelope, dict) and "answer" in envelope:
                answer = envelope["answer"]
                text = answer if isinstance(answer, str) else json.dumps(answer)
        return Response(
            text=text,
            model=self.request.model,
            provider=self.provider,
            usage=Usage(result.input_tokens, result.output_tokens),
            finish_reason=finish,
            tool_calls=calls,
            raw={
                "model_file": result.model_file,
                "finish_reason": result.finish_reason,
                "usage": {
                    "prompt_tokens": result.input_tokens,
                    "completion_tokens": result.output_tokens,
                },
                "grammar": result.grammar,
                "text": result.text,
            },
            cost=0.0,
        )


def _tool_envelope(
    tools: dict[str, dict[str, Any]], schema: dict[str, Any] | None, *, answer: bool
) -> dict[str, Any]:
    options: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"tool": {"const": name}, "arguments": params},
            "required": ["tool", "arguments"],
        }
        for name, params in tools.items()
    ]
    if answer:
        options.append(
            {
                "type": "object",
                "properties": {"answer": schema or {"type": "string"}},
                "required": ["answer"],
            }
        )
    return options[0] if len(options) == 1 else {"anyOf": options}


def _tool_instructions(request: ChatRequest, tools: dict[str, dict[str, Any]]) -> str:
    # Wording measured on SmolLM2: it picks a fitting tool far more often with this phrasing.
    described = {t.name: t.description for t in request.tools or []}
    lines = ["You can call these tools:"]
    lines += [
        f"- {name}: {described.get(name) or 'no description'} Arguments: {json.dumps(params)}"
        for name, params in tools.items()
    ]
    call = 'Answer with JSON: {"tool": NAME, "arguments": {...}} to call a tool'
    if request.tool_choice in (None, "auto"):
        call += ', or {"answer": TEXT} to answer directly'
    lines.append(call + ".")
    return "\n".join(lines)


@dataclass
class _Generation:
    text: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    grammar: str | None
    model_file: str


@functools.lru_cache(maxsize=64)
def _grammar(schema_json: str | None) -> tuple[Any, str]:
    """A llama.cpp grammar for a JSON schema (or for any JSON), and which one it is."""
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar, json_schema_to_gbnf

    if schema_json is not None:
        try:
            return LlamaGrammar.from_string(
                json_schema_to_gbnf(schema_json), verbose=False
            ), "schema"
        except Exception:  # the converter raises bare Exceptions for what it lacks
            pass
    return LlamaGrammar.from_string(JSON_GBNF, verbose=False), "json"


def _generate(
    plan: _Plan,
    emit: Callable[[str], None] | None,
    cancel: threading.Event,
    limit: float,
    *,
    per_token: bool,
) -> _Generation:
    """Run one generation on the worker thread. ``emit`` receives text as it is produced (a
    stream); ``limit`` bounds the whole generation, or with ``per_token`` each token's wait."""
    model = embedded.chat_model()
    llama, request = model.llama, plan.request
    formatted = model.formatter(messages=plan.messages(model.default_system))
    prompt = llama.tokenize(
        formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True
    )
    n_ctx = llama.n_ctx()
    if len(prompt) >= n_ctx:
        raise ContextLengthError(
            f"the prompt is {len(prompt)} tokens; the local model's context window is {n_ctx}. "
            "Shorten the prompt or the conversation history.",
            provider=plan.provider,
            model=request.model,
        )
    grammar, kind = None, None
    if plan.grammar_schema is not None or plan.any_json:
        schema = plan.grammar_schema
        # Key order is kept: the grammar emits properties in schema order.
        grammar, kind = _grammar(json.dumps(schema) if schema else None)

    from llama_cpp import StoppingCriteriaList

    timed_out = False
    last = time.monotonic()

    def should_stop(_ids: Any, _logits: Any) -> bool:
        # Called by llama.cpp after every sampled token: where a cancel or timeout lands.
        nonlocal timed_out, last
        now = time.monotonic()
        if now - last > limit:
            timed_out = True
        if per_token:
            last = now
        return cancel.is_set() or timed_out

    criteria = [should_stop]
    if formatted.stopping_criteria is not None:
        criteria.insert(0, formatted.stopping_criteria)
    stop = list(request.stop or [])
    if formatted.stop:
        stop += [formatted.stop] if isinstance(formatted.stop, str) else list(formatted.stop)
    max_tokens = min(request.max_tokens or DEFAULT_MAX_TOKENS, n_ctx - len(prompt))
    options = dict(
        prompt=prompt,
        max_tokens=max_tokens,
        stop=stop,
        seed=request.seed,
        grammar=grammar,
        stopping_criteria=StoppingCriteriaList(criteria),
        **plan.sampling,
    )
    with model.lock:
        if emit is None:
            done = llama.create_completion(**options, stream=False)
            text = done["choices"][0]["text"]
            finish = done["choices"][0]["finish_reason"]
            output_tokens = int(done["usage"]["completion_tokens"])
        else:
            pieces: list[str] = []
            finish = None
            chunks = llama.create_completion(**options, stream=True)
            try:
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    if choice["text"]:
                        pieces.append(choice["text"])
                        emit(choice["text"])
                    finish = choice.get("finish_reason") or finish
                    if cancel.is_set():
                        break
            finally:
                chunks.close()
            text = "".join(pieces)
            output_tokens = len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))
    if timed_out and not cancel.is_set():
        wait = "between two tokens" if per_token else "for the whole answer"
        raise TimeoutError(
            f"the local model took longer than {limit:g} s {wait} (timeout=); pass a larger "
            "timeout= or a smaller max_tokens=.",
            provider=plan.provider,
            model=request.model,
        )
    return _Generation(
        text=text,
        finish_reason=finish or "stop",
        input_tokens=len(prompt),
        output_tokens=output_tokens,
        grammar=kind,
        model_file=model.path.name,
    )
