"""How the fake provider servers count tokens, cache prompts and bill, by the providers'
published rules (test data of the batch and prompt-caching tests, and of ``bench/cost.py``).

Tokens: one per 4 characters of the prompt as the wire carries it (tools and schema first,
then the system prompt, then the messages in order), so a prefix of the wire text is a prefix
of the tokens.

Prompt caches:

* OpenAI (``automatic``): a prompt of 1,024 tokens or more is cached by prefix, in steps of
  128 tokens; a later request whose first N*128 tokens (N*128 >= 1,024) equal a cached prefix
  gets ``prompt_tokens_details.cached_tokens = N*128``.
* Anthropic (``explicit``): only a prefix that ends in a ``cache_control`` breakpoint is
  cached, if it is at least ``min_tokens`` long: the first request writes it
  (``cache_creation_input_tokens``), later ones read it (``cache_read_input_tokens``);
  ``input_tokens`` is what follows the last breakpoint.

Billing (:class:`Bill`): USD per 1M tokens from a price table (:data:`PRICES`, the published
list prices); cached input at the cached price, cache writes at the write price, and every
price halved for a request of a Batch API job.

Thread safety: a :class:`PromptCache` and a :class:`Bill` are used from one event loop.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PRICES", "Bill", "Price", "PromptCache", "anthropic_prefixes", "openai_wire_text"]

CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens."""

    input: float
    output: float
    cached: float
    write: float | None = None


#: Published list prices (standard tier) of the models the fake servers answer as.
PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "claude-sonnet-4-5": Price(3.00, 15.00, 0.30, 3.75),
    "claude-haiku-4-5": Price(1.00, 5.00, 0.10, 1.25),
    "gemini-2.5-flash": Price(0.30, 2.50, 0.03),
}


def tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def openai_wire_text(body: dict[str, Any]) -> str:
    """The prompt of a Chat Completions body as the cache sees it: tools and schema, then
    each message's role and text, in order."""
    head = json.dumps([body.get("tools"), body.get("response_format")], sort_keys=True)
    parts = [head]
    for message in body.get("messages") or []:
        parts.append(f"<{message.get('role')}>{_content_text(message.get('content'))}")
    return "".join(parts)


def anthropic_prefixes(body: dict[str, Any]) -> tuple[str, list[int]]:
    """The prompt of a Messages body as text (tools, system, messages, in order) and the
    character offsets where a ``cache_control`` breakpoint ends a prefix."""
    text = json.dumps(body.get("tools"), sort_keys=True)
    marks: list[int] = []
    for block in _blocks(body.get("system")):
        text += str(block.get("text", ""))
        if block.get("cache_control"):
            marks.append(len(text))
    for message in body.get("messages") or []:
        text += f"<{message.get('role')}>"
        for block in _blocks(message.get("content")):
            text += str(block.get("text", ""))
            if block.get("cache_control"):
                marks.append(len(text))
    return text, marks


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


@dataclass
class CacheUse:
    """Tokens of one prompt: all of them, read from the cache, written to it."""

    prompt: int
    read: int = 0
    written: int = 0


@dataclass
class PromptCache:
    """One account's prompt cache (see the module docstring); ``enabled=False`` caches
    nothing (a server that bills no prompt caching at all)."""

    enabled: bool = True
    min_tokens: int = 1024
    step: int = 128
    prefixes: set[str] = field(default_factory=set)

    def openai(self, text: str) -> CacheUse:
        total = tokens(text)
        use = CacheUse(total)
        if not self.enabled or total < self.min_tokens:
            return use
        for size in range(self.min_tokens, total + 1, self.step):
            key = _digest(text[: size * CHARS_PER_TOKEN])
            if key in self.prefixes:
                use.read = size
            self.prefixes.add(key)
        return use

    def anthropic(self, text: str, marks: list[int]) -> CacheUse:
        use = CacheUse(tokens(text))
        if not self.enabled or not marks:
            return use
        end = marks[-1]
        size = tokens(text[:end])
        if size < self.min_tokens:
            return use
        key = _digest(text[:end])
        if key in self.prefixes:
            use.read = size
        else:
            use.written = size
            self.prefixes.add(key)
        return use


@dataclass
class Bill:
    """What the server charged: USD, requests, and tokens by kind."""

    usd: float = 0.0
    requests: int = 0
    batch_requests: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    written_tokens: int = 0
    output_tokens: int = 0

    def charge(self, model: str, use: CacheUse, output: int, *, batch: bool) -> None:
        price = PRICES.get(model) or PRICES["gpt-4o-mini"]
        plain = use.prompt - use.read - use.written
        write = price.write if price.write is not None else price.input
        usd = plain * price.input + use.read * price.cached + use.written * write
        usd += output * price.output
        self.usd += usd / 1_000_000 * (0.5 if batch else 1.0)
        self.requests += 1
        self.batch_requests += int(batch)
        self.input_tokens += use.prompt
        self.cached_tokens += use.read
        self.written_tokens += use.written
        self.output_tokens += output
