"""The OpenAI wire protocol: OpenAI itself, Groq, Cerebras, llama.cpp / vLLM / LM Studio servers
and any other OpenAI-compatible base URL.

Endpoints: ``/chat/completions`` (JSON and SSE streaming with usage, tools, JSON mode and
JSON-schema output), ``/embeddings`` (base64 float32 decoding), ``/audio/transcriptions`` and
``/audio/translations`` (Whisper), ``/models``.

Modules: :mod:`._provider` (the provider: endpoints), :mod:`._body` (chat request bodies) and
:mod:`._parse` (answers, usage and embedding vectors).
"""

from ._provider import OpenAICompatProvider

__all__ = ["OpenAICompatProvider"]
