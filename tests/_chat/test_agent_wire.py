"""The agent loop on every wire protocol, against the spec-validating transport: a turn whose
streamed answer is two parallel tool calls (arguments arriving in pieces), their results sent
back in the provider's shape, then the final answer; a tool error is fed back as a result; and
a second run carries the first run's calls and results in its history."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

import llm_magics as lm
from tests.providers import test_anthropic as anth
from tests.providers import test_gemini as gem
from tests.providers import test_ollama as oll
from tests.providers import test_openai_compat as oai
from tests.support.specs import SpecTransport

KEY = "sk-test-0123456789abcdefWXYZ"
CITIES = ("Paris", "Rome")


def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city's name, in English.
    """
    if city == "Rome":
        raise RuntimeError("the Rome station is down")
    return f"18C and sunny in {city}"


# --- one scripted model per protocol: turn 1 streams two calls, turn 2 streams the answer ---


def openai_turns(typed_deltas: bool = False) -> list[bytes]:
    """OpenAI's continuation deltas carry only the index and more arguments; Cerebras' spec
    wants ``type`` in each."""
    calls = []
    for i, city in enumerate(CITIES):
        args = json.dumps({"city": city})
        first = {"index": i, "id": f"call_{i}", "type": "function",
                 "function": {"name": "get_weather", "arguments": args[:5]}}  # fmt: skip
        rest: dict[str, Any] = {"index": i, "function": {"arguments": args[5:]}}
        if typed_deltas:
            rest["type"] = "function"
        calls += [oai.chunk({"tool_calls": [first]}), oai.chunk({"tool_calls": [rest]})]
    usage = {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
    turn1 = [oai.chunk({"role": "assistant", "content": None}), *calls,
             oai.chunk({}, "tool_calls"), oai.chunk({}, usage=usage)]  # fmt: skip
    turn2 = [oai.chunk({"role": "assistant", "content": "Paris is "}),
             oai.chunk({"content": "sunny."}), oai.chunk({}, "stop"), oai.chunk({}, usage=usage)]  # fmt: skip
    for c in [*turn1, *turn2]:
        c["system_fingerprint"] = "fp_1"  # Cerebras' spec requires it; the others allow it
    return [oai.sse(turn1), oai.sse(turn2)]


def anthropic_turns() -> list[bytes]:
    start = anth.message([], stop="end_turn")
    start["stop_reason"] = None
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for i, city in enumerate(CITIES):
        args = json.dumps({"city": city})
        block = anth.tool_use(f"toolu_{i}", "get_weather", {})
        events += [
            {"type": "content_block_start", "index": i, "content_block": block},
            {"type": "content_block_delta", "index": i,
             "delta": {"type": "input_json_delta", "partial_json": args[:5]}},
            {"type": "content_block_delta", "index": i,
             "delta": {"type": "input_json_delta", "partial_json": args[5:]}},
            {"type": "content_block_stop", "index": i},
        ]  # fmt: skip
    events += [
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
         "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]  # fmt: skip
    return [anth.sse(events), anth.sse(anth.text_stream_events(["Paris is ", "sunny."]))]


def gemini_turns() -> list[bytes]:
    calls = [{"functionCall": {"name": "get_weather", "args": {"city": c}}} for c in CITIES]
    turn1 = [gem.generated([calls[0]], None), gem.generated([calls[1]], "STOP", gem.USAGE)]
    turn2 = [gem.generated([{"text": "Paris is "}], None),
             gem.generated([{"text": "sunny."}], "STOP", gem.USAGE)]  # fmt: skip
    return [gem.sse(turn1), gem.sse(turn2)]


def ollama_turns() -> list[bytes]:
    calls = [{"function": {"name": "get_weather", "arguments": {"city": c}}} for c in CITIES]
    turn1 = [oll.chat_answer("", tool_calls=calls)]
    return [oll.ndjson(turn1), oll.ndjson(oll.text_lines(["Paris is ", "sunny."]))]


PROTOCOLS: dict[str, tuple[str, Callable[[], list[bytes]], str]] = {
    "openai": ("openai:gpt-4o-mini", openai_turns, "text/event-stream"),
    "groq": ("groq:llama-3.3-70b-versatile", openai_turns, "text/event-stream"),
    "cerebras": ("cerebras:llama-3.3-70b", lambda: openai_turns(True), "text/event-stream"),
    "anthropic": (f"anthropic:{anth.MODEL}", anthropic_turns, "text/event-stream"),
    "gemini": (f"gemini:{gem.MODEL}", gemini_turns, "text/event-stream"),
    "ollama": (f"ollama:{oll.MODEL}", ollama_turns, "application/x-ndjson"),
}


def scripted(protocol: str) -> tuple[lm.Client, SpecTransport]:
    model, turns, kind = PROTOCOLS[protocol]
    bodies = turns() * 2  # a second run gets the same two turns

    def handle(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": kind}, content=bodies.pop(0))

    transport = SpecTransport(protocol, handle, validate_responses=protocol != "gemini")
    key = None if protocol == "ollama" else KEY
    return lm.client(model, api_key=key, transport=transport, cache=False), transport


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_a_streamed_two_call_turn_runs_both_tools_and_feeds_results_back(protocol: str) -> None:
    client, transport = scripted(protocol)
    agent = lm.Agent(tools=[get_weather], system="Be brief.")
    events = list(agent.stream("Weather in Paris and Rome?", model=None, client=client))
    transport.assert_clean()
    kinds = [e.type for e in events]
    assert kinds.count("tool_call") == 2 and kinds.count("tool_result") == 2
    assert kinds[-1] == "done" and "error" not in kinds
    calls = [e.tool_call for e in events if e.type == "tool_call"]
    assert [(c.name, c.arguments) for c in calls if c] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ], "arguments streamed in pieces are assembled"
    result = agent.last
    assert result is not None and result.status == "completed" and result.num_turns == 2
    assert result.text == "Paris is sunny."
    assert "".join(e.text for e in events if e.type == "text") == "Paris is sunny."
    by_city = {r.arguments["city"]: r for r in result.tool_calls}
    assert by_city["Paris"].ok and by_city["Paris"].content == "18C and sunny in Paris"
    assert by_city["Rome"].error == "RuntimeError: the Rome station is down"
    assert len(transport.bodies) == 2
    # The second request carries both results, in the provider's own shape.
    sent = json.dumps(transport.bodies[1])
    assert "18C and sunny in Paris" in sent and "the Rome station is down" in sent


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_a_second_run_sends_the_first_runs_calls_and_results_in_its_history(
    protocol: str,
) -> None:
    client, transport = scripted(protocol)
    agent = lm.Agent(tools=[get_weather])
    agent.run("Weather in Paris and Rome?", client=client)
    agent.run("And tomorrow?", client=client)
    transport.assert_clean()
    assert len(agent.conversation) == 2 and len(agent.conversation.turns[0].steps) == 3
    history = json.dumps(transport.bodies[2])
    assert "Weather in Paris and Rome?" in history and "18C and sunny in Paris" in history
    assert "And tomorrow?" in history
