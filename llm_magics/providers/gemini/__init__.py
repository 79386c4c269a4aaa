"""The Gemini API (Google AI Studio, v1beta): ``models/{model}:generateContent``,
``:streamGenerateContent?alt=sse``, ``:embedContent``, ``:batchEmbedContents`` and ``models``.

The key travels in the ``x-goog-api-key`` header, never in the URL query: URLs end up in
exception messages and logs.

Wire notes:

* JSON is camelCase; roles are ``user`` and ``model``; the system prompt is
  ``systemInstruction``; tool calls are ``functionCall`` parts and tool results
  ``functionResponse`` parts (matched by function name, so a result message without a name
  borrows it from the call with the same id earlier in the history).
* Structured output and tool parameters use ``responseJsonSchema`` / ``parametersJsonSchema``,
  which take ordinary JSON Schema (``$ref``, ``anyOf``, ``additionalProperties``...); the older
  ``responseSchema`` / ``parameters`` take only an OpenAPI subset and would need converting.
* Gemini gives function calls no id: one is derived from the call itself, so it is stable.
  Thinking models sign their function calls (``thoughtSignature``) and Gemini 3 refuses a
  history whose call lost its signature; the signatures of recent calls are kept, by call id,
  and sent back with them.
* Audio is taken inline, which is also how :meth:`GeminiProvider.transcribe` works.
* A bad key is a 400 INVALID_ARGUMENT "API key not valid": ``auth_markers`` make it an
  AuthenticationError; a 429 names its wait in a RetryInfo detail of the body.

Thread safety: the signature memory is only touched from the event loop running the call.

Modules: :mod:`._provider` (the provider: endpoints), :mod:`._body` (request bodies),
:mod:`._calls` (function-call ids and thought signatures) and :mod:`._parse` (answers).
"""

from ._provider import GeminiProvider

__all__ = ["GeminiProvider"]
