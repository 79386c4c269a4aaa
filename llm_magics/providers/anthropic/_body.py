"""Anthropic request bodies: the top-level fields, and the history as alternating turns of
content blocks (text, images, documents, ``tool_use`` and ``tool_result``)."""

from __future__ import annotations

from typing import Any

from ..._core.types import ChatRequest, Message, Part, TextPart
from ..base import Provider
from ._tools import tool_use_id, tools_and_choice

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_JSON_INSTRUCTION = (
    "Answer with one valid JSON value only: no prose before or after it, no Markdown code fence."
)


def default_max_tokens(model: str) -> int:
    """A ``max_tokens`` the model accepts when the caller gave none: the Claude 3 models
    (Haiku, Sonnet, Opus) stop at 4096 output tokens; Claude 3.5 and later take at least 8192."""
    legacy = ("claude-3-haiku", "claude-3-sonnet", "claude-3-opus")
    return 4096 if model.startswith(legacy) else 8192


def build_body(provider: Provider, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The JSON body of ``POST /v1/messages`` for ``request``."""
    systems = [request.system] if request.system else []
    systems += [m.text for m in request.messages if m.role == "system" and m.text]
    if request.json_mode and request.schema is None:
        systems.append(_JSON_INSTRUCTION)
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": (
            request.max_tokens
            if request.max_tokens is not None
            else default_max_tokens(request.model)
        ),
        "messages": _messages(provider, request.messages),
    }
    if systems:
        body["system"] = "\n\n".join(systems)
    if request.prompt_cache is not None and request.prompt_cache.breakpoint:
        _mark_shared_prefix(body, request.prompt_cache.prefix)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    # Anthropic has no seed: request.seed is left out (sampling is not reproducible there).
    tools, choice = tools_and_choice(request)
    if tools:
        body["tools"] = tools
        if choice is not None:
            body["tool_choice"] = choice
    if stream:
        body["stream"] = True
    body.update(request.extra)
    return body


_EPHEMERAL = {"type": "ephemeral"}


def _mark_shared_prefix(body: dict[str, Any], prefix: str) -> None:
    """One ``cache_control`` breakpoint at the end of what a map's requests share: after
    ``prefix`` at the start of the first user message when it starts so (that text then
    travels as two blocks, the shared one first), else after the system prompt. Tools come
    before both, so they are part of the cached prefix."""
    messages = body["messages"]
    first = messages[0] if messages and messages[0]["role"] == "user" else None
    if prefix and first is not None:
        content = first["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        head = blocks[0] if blocks else {}
        text = head.get("text") if head.get("type") == "text" else None
        if isinstance(text, str) and text.startswith(prefix):
            rest = text[len(prefix) :]
            marked = {"type": "text", "text": prefix, "cache_control": dict(_EPHEMERAL)}
            split = [marked, {"type": "text", "text": rest}] if rest else [marked]
            first["content"] = split + blocks[1:]
            return
    if body.get("system"):
        body["system"] = [
            {"type": "text", "text": body["system"], "cache_control": dict(_EPHEMERAL)}
        ]


def _messages(provider: Provider, messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue  # hoisted into the top-level system field
        role = "assistant" if m.role == "assistant" else "user"
        blocks = _blocks(provider, m)
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for message in out:
        # Text alone goes as a plain string: the simplest form, and the one servers that
        # only understand strings (some proxies, local servers) do not drop.
        blocks = message["content"]
        if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
            message["content"] = blocks[0]["text"]
    return out


def _blocks(provider: Provider, m: Message) -> list[dict[str, Any]]:
    if m.role == "tool":
        result: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": tool_use_id(m.tool_call_id or m.name or ""),
        }
        content = [_part(provider, p) for p in m.parts if not _empty(p)]
        if content:
            only_text = all(isinstance(p, TextPart) for p in m.parts)
            result["content"] = m.text if only_text else content
        return [result]
    blocks = [_part(provider, p) for p in m.parts if not _empty(p)]
    if m.role == "assistant":
        blocks += [
            {
                "type": "tool_use",
                "id": tool_use_id(t.id or t.name),
                "name": t.name,
                "input": t.arguments,
            }
            for t in m.tool_calls
        ]
    return blocks


def _part(provider: Provider, p: Part) -> dict[str, Any]:
    if isinstance(p, TextPart):
        return {"type": "text", "text": p.text}
    if p.kind == "image":
        if p.data is None:
            return {"type": "image", "source": {"type": "url", "url": p.url}}
        if p.mime_type not in _IMAGE_TYPES:
            raise provider.unsupported(
                f"images of type {p.mime_type}", "Convert it to PNG, JPEG, GIF or WebP."
            )
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": p.mime_type, "data": p.b64()},
        }
    if p.data is None:
        return {"type": "document", "source": {"type": "url", "url": p.url}}
    if p.mime_type == "application/pdf":
        source = {"type": "base64", "media_type": "application/pdf", "data": p.b64()}
    elif p.mime_type == "text/plain":
        text = p.data.decode("utf-8", "replace")
        source = {"type": "text", "media_type": "text/plain", "data": text}
    else:
        raise provider.unsupported(f"documents of type {p.mime_type}", "It takes PDF and text.")
    return {"type": "document", "source": source}


def _empty(p: Part) -> bool:
    # Anthropic refuses empty text blocks.
    return isinstance(p, TextPart) and not p.text
