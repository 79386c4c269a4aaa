"""The neutral request/response model every provider translates to and from.

Nothing here knows a wire format. Providers turn a :class:`ChatRequest` into their own JSON
and their JSON back into a :class:`Response`; the cache, the DataFrame engine and the magics
only ever see these types.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .media_part import MediaKind, MediaPart
from .schema import OutputSchema

Role = Literal["system", "user", "assistant", "tool"]

__all__ = [
    "ChatRequest",
    "MediaKind",
    "MediaPart",
    "Message",
    "OutputSchema",
    "Part",
    "PromptCache",
    "Response",
    "TextPart",
    "ToolCall",
    "ToolSpec",
    "Transcript",
    "Usage",
]


@dataclass(frozen=True)
class Usage:
    """Token counts of one response. ``cached_input_tokens`` is the part of the input the
    provider served from its prompt cache; ``cache_write_tokens`` what it wrote to it."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asked for. ``arguments`` is parsed JSON; when the model sent
    JSON that does not parse, ``arguments`` is empty and ``raw_arguments`` keeps the text."""

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str = ""

    @classmethod
    def from_raw(cls, id: str, name: str, raw: str | Mapping[str, Any] | None) -> ToolCall:
        if isinstance(raw, Mapping):
            return cls(id, name, dict(raw), json.dumps(raw))
        text = raw or ""
        try:
            parsed = json.loads(text) if text.strip() else {}
        except ValueError:
            parsed = {}
        return cls(id, name, parsed if isinstance(parsed, dict) else {"value": parsed}, text)


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: a name, a description and a JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    #: A pydantic model that checks (and coerces) the arguments before ``function`` runs.
    arguments_model: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TextPart:
    text: str


Part = TextPart | MediaPart


@dataclass
class Message:
    """One chat message. ``content`` is a string or a list of text and media parts."""

    role: Role
    content: str | list[Part] = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None

    @property
    def parts(self) -> list[Part]:
        if isinstance(self.content, str):
            return [TextPart(self.content)] if self.content else []
        return self.content

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    def to_dict(self) -> dict[str, Any]:
        """OpenAI-style dict, media as content hashes: stable, JSON-safe, key-free."""
        out: dict[str, Any] = {"role": self.role}
        if isinstance(self.content, str):
            out["content"] = self.content
        else:
            out["content"] = [
                {"type": "text", "text": p.text}
                if isinstance(p, TextPart)
                else {"type": p.kind, "mime_type": p.mime_type, "sha256": p.content_hash}
                for p in self.content
            ]
        if self.tool_calls:
            out["tool_calls"] = [
                {"id": t.id, "name": t.name, "arguments": t.arguments} for t in self.tool_calls
            ]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        if self.name:
            out["name"] = self.name
        return out


def _unset(value: Any) -> bool:
    return value is None or value is False or (type(value) in (list, dict) and not value)


@dataclass(frozen=True)
class PromptCache:
    """How a request may use the provider's prompt cache, shared by the requests of one map:
    ``key`` names their cache (OpenAI's ``prompt_cache_key``), ``prefix`` is the text every
    one of their prompts starts with, and ``breakpoint`` says the shared part (tools, system
    prompt, ``prefix``) is long enough for a provider that caches only marked prefixes
    (Anthropic's ``cache_control``). It never changes the answer, so it is no part of the
    response-cache key."""

    key: str
    prefix: str = ""
    breakpoint: bool = False


@dataclass
class ChatRequest:
    """A provider-neutral chat request. ``extra`` is merged into the wire body last, for
    provider-specific fields this model does not name. ``prompt_cache`` is a hint for the
    provider's prompt cache, not part of what is asked (nor of :meth:`fingerprint`)."""

    model: str
    messages: list[Message]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: str | dict[str, Any] | None = None
    schema: OutputSchema | None = None
    json_mode: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    prompt_cache: PromptCache | None = None

    def fingerprint(self) -> dict[str, Any]:
        """Everything that can change the answer, as JSON-safe data (for cache keys). Unset
        fields (None, False, empty) are left out: they mean the same as absent, and the key
        is hashed from this on every call."""
        full = {
            "model": self.model,
            "messages": [m.to_dict() for m in self.messages],
            "system": self.system,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "stop": self.stop,
            "seed": self.seed,
            "tools": [
                {"name": t.name, "description": t.description, "parameters": t.parameters}
                for t in self.tools or []
            ],
            "tool_choice": self.tool_choice,
            "schema": self.schema.json_schema if self.schema else None,
            "json_mode": self.json_mode,
            "extra": self.extra,
        }
        return {k: v for k, v in full.items() if not _unset(v)}


class _LazyRaw:
    """The ``raw`` field of :class:`Response`, decoded from its JSON text when first read.

    A descriptor, so an answer can carry the JSON text its ``raw`` comes from: a cached
    answer decodes it only when someone reads ``raw`` (decoding it on every cache hit was a
    third of the cost of a hit), and a fresh answer is cached without encoding ``raw`` again.
    The value lives in the instance's ``__dict__`` (as ``_raw``, or still as the text in
    ``_raw_json``), so equality, ``dataclasses.replace`` and pickling see a plain field.
    """

    def __get__(self, response: Response | None, owner: type | None = None) -> Any:
        if response is None:
            return self
        state = response.__dict__
        if "_raw" not in state:
            text = state.get("_raw_json")
            state["_raw"] = None if text is None else json.loads(text)
        return state["_raw"]

    def __set__(self, response: Response, value: Any) -> None:
        if value is self:  # the dataclass __init__ passes the field's default: this object
            value = None
        response.__dict__.pop("_raw_json", None)
        response.__dict__["_raw"] = value

    def __repr__(self) -> str:
        return "None"  # the default this object stands for, as help(Response) shows it


@dataclass
class Response:
    """One answer. ``str(response)`` is its text; in a notebook it renders as Markdown."""

    text: str
    model: str
    provider: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    parsed: Any = None
    cached: bool = False
    raw: Any = field(default=_LazyRaw(), repr=False)
    cost: float | None = None
    latency: float | None = None

    def __str__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str:
        from .markdown import safe_markdown

        return safe_markdown(self.text)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, used by the cache. ``parsed`` is rebuilt from text on load."""
        return {
            "text": self.text,
            "model": self.model,
            "provider": self.provider,
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
                "cached_input_tokens": self.usage.cached_input_tokens,
                "cache_write_tokens": self.usage.cache_write_tokens,
            },
            "finish_reason": self.finish_reason,
            "tool_calls": [
                {"id": t.id, "name": t.name, "arguments": t.arguments, "raw": t.raw_arguments}
                for t in self.tool_calls
            ],
            "raw": self.raw,
            "cost": self.cost,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Response:
        return cls(
            text=data["text"],
            model=data["model"],
            provider=data["provider"],
            usage=Usage(**data.get("usage", {})),
            finish_reason=data.get("finish_reason"),
            tool_calls=[
                ToolCall(t["id"], t["name"], t["arguments"], t.get("raw", ""))
                for t in data.get("tool_calls", [])
            ],
            raw=data.get("raw"),
            cost=data.get("cost"),
        )


def response_with_raw_json(response: Response, raw_json: str | bytes | None) -> Response:
    """``response`` whose ``raw`` is decoded from ``raw_json`` when first read."""
    response.raw = None
    if raw_json is not None:
        del response.__dict__["_raw"]
        response.__dict__["_raw_json"] = raw_json
    return response


def attach_raw_json(response: Response, raw_json: str | bytes) -> Response:
    """Remember the JSON text ``response.raw`` was decoded from (the HTTP body)."""
    response.__dict__["_raw_json"] = raw_json
    return response


def raw_json_of(response: Response) -> str | bytes | None:
    """The JSON text of ``response.raw`` when known (see :func:`attach_raw_json`)."""
    text: str | bytes | None = response.__dict__.get("_raw_json")
    return text


class Transcript(str):
    """A transcription: the text itself, plus ``segments``/``words`` with timestamps when asked
    for, and the detected ``language`` and ``duration`` when the provider reports them."""

    segments: list[dict[str, Any]]
    words: list[dict[str, Any]]
    language: str | None
    duration: float | None

    def __new__(
        cls,
        text: str,
        *,
        segments: list[dict[str, Any]] | None = None,
        words: list[dict[str, Any]] | None = None,
        language: str | None = None,
        duration: float | None = None,
    ) -> Transcript:
        obj = super().__new__(cls, text)
        obj.segments = segments or []
        obj.words = words or []
        obj.language = language
        obj.duration = duration
        return obj
