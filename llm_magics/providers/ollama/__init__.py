"""Ollama's native API: ``POST /api/chat`` (JSON, or NDJSON when streaming), ``POST /api/embed``,
``GET /api/tags``, ``POST /api/pull`` and ``GET /api/version``.

The host comes from ``OLLAMA_HOST`` (default http://127.0.0.1:11434); no key is needed. On top
of the provider interface, :meth:`OllamaProvider.is_available` tells whether a server answers
and :meth:`OllamaProvider.ensure_model` pulls a model that is not installed yet::

    c = lm.client("ollama:llama3.2")
    if await c.provider.is_available():
        await c.provider.ensure_model("llama3.2")

Wire notes: sampling options go under ``options`` (``num_predict`` is max_tokens); ``format``
is a JSON schema for ``schema=`` or ``"json"`` for JSON mode; images are base64 strings in a
message's ``images`` list (bytes only: Ollama does not fetch URLs); tool-call arguments are
JSON objects, not strings, and carry no id, so one is derived from the call.

Modules: :mod:`._provider` (the provider: endpoints and server management), :mod:`._body`
(request bodies), :mod:`._parse` (answers and tool calls) and :mod:`._explain` (what to do when
the server is not running or lacks the model).
"""

from ._provider import OllamaProvider

__all__ = ["OllamaProvider"]
