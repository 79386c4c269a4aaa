"""The Anthropic Messages API: ``POST {base_url}/v1/messages`` (JSON and SSE streaming) and
``GET {base_url}/v1/models``.

Differences from the OpenAI shape that this package absorbs:

* ``system`` is a top-level field (system messages in the history are hoisted there) and
  ``max_tokens`` is required: when the request has none, a value every model of the family
  accepts is sent (:func:`default_max_tokens`).
* Turns alternate: consecutive messages of one role are merged into one message; tool results
  travel as ``tool_result`` blocks inside a user message, tool calls as ``tool_use`` blocks.
* Structured output (``schema=``) forces a tool named after the schema; the tool's input is the
  answer and becomes ``Response.text`` as JSON, which the client parses into ``parsed``.
* JSON mode (``json_mode=True``) is an instruction appended to the system prompt, not an
  assistant prefill: prefilling is refused by the newest Claude models and by extended
  thinking, while the client's JSON parser already tolerates a stray Markdown fence.
* Usage: ``input_tokens`` here is the whole prompt (Anthropic's ``input_tokens`` plus its cache
  reads and writes), so that, as with every provider, ``cached_input_tokens`` and
  ``cache_write_tokens`` are parts of ``input_tokens``.

No embeddings: Anthropic has no embedding endpoint.

Modules: :mod:`._provider` (the provider: endpoints), :mod:`._body` (request bodies),
:mod:`._tools` (tools and the structured-output tool), :mod:`._parse` (answers) and
:mod:`._stream` (SSE events).
"""

from ._body import default_max_tokens
from ._provider import API_VERSION, AnthropicProvider
from ._tools import schema_tool_name as schema_tool_name
from ._tools import tool_use_id as tool_use_id

__all__ = ["API_VERSION", "AnthropicProvider", "default_max_tokens"]
