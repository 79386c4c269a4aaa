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

Modules: :mod:`._provider` (the provider: chat, stream, embeddings, Whisper), :mod:`._plan`
(a request worked out into what to generate, and the answer turned into a Response) and
:mod:`._generate` (one generation on llama.cpp, on the worker thread).
"""

from ._generate import DEFAULT_MAX_TOKENS
from ._plan import _Plan as _Plan  # the tests build plans directly
from ._provider import WHISPER_NAME as WHISPER_NAME
from ._provider import LocalProvider

__all__ = ["DEFAULT_MAX_TOKENS", "LocalProvider"]
