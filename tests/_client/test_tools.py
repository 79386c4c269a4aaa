"""Tools: functions become JSON-schema tool specs; run_tools=True runs the calls the model asks
for and sends their results back until it answers. Requests are validated against OpenAI's spec."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

import llm_magics as lm
from llm_magics._client.tools import to_tool_specs
from tests.support.specs import SpecTransport


def add(a: int, b: int = 0) -> int:
    """Add two integers.

    Longer explanation that is not part of the description."""
    return a + b


def test_a_function_becomes_a_schema_with_types_required_fields_and_its_docstring() -> None:
    (spec,) = to_tool_specs([add]) or []
    assert spec.name == "add" and spec.description == "Add two integers."
    assert spec.parameters["properties"] == {
        "a": {"type": "integer"},
        "b": {"default": 0, "type": "integer"},
    }
    assert spec.parameters["required"] == ["a"]


def test_openai_style_tool_dicts_are_accepted_and_bad_ones_explained() -> None:
    (spec,) = (
        to_tool_specs(
            [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
        )
        or []
    )
    assert spec.name == "f" and spec.function is None
    with pytest.raises(lm.ConfigError, match="needs a 'name'"):
        to_tool_specs([{"description": "nameless"}])
    with pytest.raises(lm.ConfigError, match=r"functions, lm\.Tool objects or JSON-schema dicts"):
        to_tool_specs([42])


def test_tool_decorator_builds_the_spec_once_at_definition() -> None:
    @lm.tool
    def shout(text: str) -> str:
        """Upper-case text."""
        return text.upper()

    assert shout.__llm_tool__.name == "shout"  # type: ignore[attr-defined]
    assert shout("a") == "A"


def _completion(message: dict[str, Any], usage: tuple[int, int]) -> httpx2.Response:
    return httpx2.Response(
        200,
        json={
            "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "refusal": None, **message},
                         "finish_reason": "tool_calls" if message.get("tool_calls") else "stop", "logprobs": None}],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
        },
    )  # fmt: skip


def test_run_tools_calls_the_functions_and_returns_the_final_answer_with_summed_usage() -> None:
    replies = iter(
        [
            _completion(
                {"content": None, "tool_calls": [
                    {"id": "1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}},
                    {"id": "2", "type": "function", "function": {"name": "missing", "arguments": "{}"}},
                ]},
                (10, 5),
            ),
            _completion({"content": "2 + 3 = 5"}, (20, 4)),
        ]
    )  # fmt: skip
    transport = SpecTransport("openai", lambda r: next(replies))
    c = lm.client(
        "openai:gpt-4o-mini", api_key="sk-test-123456789", transport=transport, cache=False
    )
    r = c.chat("What is 2 + 3?", tools=[add], run_tools=True)
    transport.assert_clean()
    assert r.text == "2 + 3 = 5"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (30, 9)
    assert [t["name"] for t in r.raw["tool_rounds"]] == ["add", "missing"]
    followup = transport.bodies[1]["messages"]
    assert followup[-2] == {"role": "tool", "tool_call_id": "1", "content": "5"}
    assert followup[-1]["content"].startswith(
        "error: there is no tool named 'missing'; the tools are: add"
    )


def test_a_tool_that_raises_is_reported_to_the_model_not_to_the_user() -> None:
    def broken() -> str:
        """Always fails."""
        raise ValueError("disk on fire")

    sent: list[dict[str, Any]] = []
    replies = iter(
        [
            _completion({"content": None, "tool_calls": [{"id": "t", "type": "function", "function": {"name": "broken", "arguments": "{}"}}]}, (1, 1)),
            _completion({"content": "Sorry, the tool failed."}, (1, 1)),
        ]
    )  # fmt: skip

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        return next(replies)

    c = lm.client(
        "openai:gpt-4o-mini",
        api_key="sk-test-123456789",
        transport=httpx2.MockTransport(handler),
        cache=False,
    )
    assert c.chat("go", tools=[broken], run_tools=True).text == "Sorry, the tool failed."
    assert sent[1]["messages"][-1]["content"] == "error: ValueError: disk on fire"


def test_a_model_that_never_stops_calling_tools_is_cut_off_with_a_clear_error() -> None:
    call = {"id": "t", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
    c = lm.client(
        "openai:gpt-4o-mini",
        api_key="sk-test-123456789",
        transport=httpx2.MockTransport(
            lambda r: _completion({"content": None, "tool_calls": [call]}, (1, 1))
        ),
        cache=False,
    )
    with pytest.raises(lm.LLMError, match="still calling tools after 3 rounds"):
        c.chat("loop", tools=[add], run_tools=True, max_tool_rounds=3)


def test_a_forced_tool_choice_applies_to_the_first_round_only_so_the_loop_ends() -> None:
    # Case 13 of the hardening issue: a model obeys a forced choice every time it is sent.
    def forced_or_answer(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        choice = body.get("tool_choice")
        if isinstance(choice, dict) or choice == "required":
            call = {
                "id": "c",
                "type": "function",
                "function": {"name": "add", "arguments": '{"a": 1}'},
            }
            return _completion({"content": None, "tool_calls": [call]}, (1, 1))
        return _completion({"content": "1 it is"}, (1, 1))  # fmt: skip

    transport = SpecTransport("openai", forced_or_answer)
    c = lm.client(
        "openai:gpt-4o-mini", api_key="sk-test-123456789", transport=transport, cache=False
    )
    r = c.chat("Add one", tools=[add], tool_choice="add", run_tools=True, max_tool_rounds=4)
    transport.assert_clean()
    assert r.text == "1 it is"
    choices = [body.get("tool_choice") for body in transport.bodies]
    assert choices == [{"type": "function", "function": {"name": "add"}}, "auto"]
