"""A local chat request worked out before it reaches the worker: sampling options, the tools
and the JSON grammar schema that constrain the answer, the chat-template messages, and the
finished generation turned into a :class:`Response`."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from ..._core.errors import ConfigError
from ..._core.types import ChatRequest, Message, Response, ToolCall, Usage
from ..base import Provider

_SAMPLING_DEFAULTS = {"temperature": 0.2, "top_p": 0.95, "top_k": 40, "min_p": 0.05}
#: The llama.cpp sampling options a request may pass through ``extra_body``.
LLAMA_OPTIONS = frozenset(
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


@dataclass
class Generation:
    """What one run of the model produced."""

    text: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    grammar: str | None
    model_file: str


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
    def build(cls, provider: Provider, request: ChatRequest) -> _Plan:
        provider.check_media(request)
        unknown = sorted(set(request.extra) - LLAMA_OPTIONS)
        if unknown:
            raise ConfigError(
                f"local does not understand option(s) {', '.join(unknown)}; besides system, "
                "temperature, max_tokens, top_p, stop, seed, schema and tools it takes "
                f"{', '.join(sorted(LLAMA_OPTIONS))}.",
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

    def response(self, result: Generation) -> Response:
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
