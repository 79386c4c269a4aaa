"""lm.Agent: tool failures are data (exceptions, timeouts, bad arguments go back to the model),
the calls of one turn run concurrently, max_turns ends a run with its status and the text so
far, a provider error ends it with status "error", and the events, SSE strings, callbacks and
ToolRegistry.execute say what happened."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

import llm_magics as lm
from tests.providers.test_openai_compat import chunk, completion, sse
from tests.support.specs import SpecTransport

KEY = "sk-test-0123456789abcdefWXYZ"


def call(i: int, name: str, **arguments: Any) -> dict[str, Any]:
    return {"id": f"call_{i}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)}}  # fmt: skip


class Model:
    """An OpenAI model that asks for ``script[n]`` tool calls on turn n, then answers."""

    def __init__(self, *script: list[dict[str, Any]], answer: str = "All done.") -> None:
        self.script = list(script)
        self.answer = answer
        self.transport = SpecTransport("openai", self.handle)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        turn = len(self.transport.bodies) - 1
        calls = self.script[turn] if turn < len(self.script) else None
        if not json.loads(request.content).get("stream"):
            if calls:
                return httpx2.Response(200, json=completion(None, tool_calls=calls))
            return httpx2.Response(200, json=completion(self.answer))
        usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        if calls:
            deltas = [{"tool_calls": [{"index": i, **c}]} for i, c in enumerate(calls)]
            finish = "tool_calls"
        else:
            deltas, finish = [{"content": self.answer}], "stop"
        chunks = [chunk(d) for d in deltas] + [chunk({}, finish), chunk({}, usage=usage)]
        return httpx2.Response(200, headers={"content-type": "text/event-stream"},
                               content=sse(chunks))  # fmt: skip

    def client(self) -> lm.Client:
        return lm.client("openai:gpt-4o-mini", api_key=KEY, transport=self.transport, cache=False)

    def results_sent(self, turn: int) -> list[str]:
        body = self.transport.bodies[turn]
        return [m["content"] for m in body["messages"] if m["role"] == "tool"]


def agent_for(model: Model, tools: list[Callable[..., Any]], **settings: Any) -> lm.Agent:
    agent = lm.Agent(tools=tools, **settings)
    agent.conversation.client_for = lambda m=None, c=None: model.client()  # type: ignore[method-assign]
    return agent


def slow(seconds: float) -> str:
    """Sleep, then say so."""
    time.sleep(seconds)
    return f"slept {seconds}"


async def slow_async(seconds: float) -> str:
    """Sleep without a thread, then say so."""
    await asyncio.sleep(seconds)
    return f"napped {seconds}"


@pytest.mark.parametrize("tool", [slow, slow_async])
def test_the_calls_of_one_turn_run_concurrently(tool: Callable[..., Any]) -> None:
    model = Model([call(0, tool.__name__, seconds=1.0), call(1, tool.__name__, seconds=1.0)])
    started = time.perf_counter()
    result = agent_for(model, [tool]).run("Sleep twice")
    took = time.perf_counter() - started
    assert result.status == "completed" and len(result.tool_calls) == 2
    assert all(r.ok for r in result.tool_calls)
    assert took < 1.8, f"two 1 s tools took {took:.2f} s: they did not run side by side"
    assert all(0.9 < r.duration < 1.8 for r in result.tool_calls)


def test_without_parallel_execution_the_calls_run_one_after_another() -> None:
    model = Model([call(0, "slow", seconds=0.3), call(1, "slow", seconds=0.3)])
    started = time.perf_counter()
    agent_for(model, [slow], parallel_tool_execution=False).run("Sleep twice")
    assert time.perf_counter() - started >= 0.6


def test_a_tool_past_its_timeout_is_an_error_result_and_the_loop_goes_on() -> None:
    model = Model([call(0, "slow_async", seconds=5.0)])
    started = time.perf_counter()
    result = agent_for(model, [slow_async], tool_timeout=0.3).run("Nap")
    assert time.perf_counter() - started < 3.0
    assert result.status == "completed" and result.text == "All done."
    [timed_out] = result.tool_calls
    assert timed_out.error == "the tool did not finish within 0.3 s"
    assert model.results_sent(1) == ["error: the tool did not finish within 0.3 s"]


def test_arguments_that_do_not_fit_the_schema_go_back_to_the_model_as_an_error() -> None:
    model = Model([call(0, "slow", seconds="soon"), call(1, "nosuch", x=1)])
    result = agent_for(model, [slow]).run("Sleep")
    bad, unknown = result.tool_calls
    assert bad.error is not None and bad.error.startswith("invalid arguments: seconds:")
    assert unknown.error is not None and "no tool named 'nosuch'" in unknown.error
    assert [r.startswith("error: ") for r in model.results_sent(1)] == [True, True]


def test_max_turns_stops_a_loop_with_its_status_and_the_text_so_far() -> None:
    looping = [call(i, "slow", seconds=0) for i in range(5)]
    model = Model(*[[c] for c in looping])
    result = agent_for(model, [slow], max_turns=3).run("Loop")
    assert result.status == "max_turns" and result.num_turns == 3
    assert len(result.tool_calls) == 3 and len(model.transport.bodies) == 3
    assert result.usage.input_tokens == 36, "the usage of all three turns"


def test_a_provider_error_ends_the_run_with_status_error() -> None:
    transport = SpecTransport(
        "openai",
        lambda r: httpx2.Response(
            400, json={"error": {"message": "bad", "type": "invalid_request_error",
                                 "param": None, "code": None}},
        ),
    )  # fmt: skip
    agent = lm.Agent(tools=[slow])
    agent.conversation.client_for = lambda m=None, c=None: lm.client(  # type: ignore[method-assign]
        "openai:gpt-4o-mini", api_key=KEY, transport=transport, cache=False
    )
    events = list(agent.stream("Go"))
    assert [e.type for e in events] == ["error"]
    assert isinstance(events[0].error, lm.BadRequestError)
    assert agent.last is not None and agent.last.status == "error"
    with pytest.raises(lm.BadRequestError):
        agent.run("Go again")
    assert len(agent.conversation) == 0, "a failed run records no turn"


def test_events_come_in_order_and_read_as_sse_strings() -> None:
    model = Model([call(0, "slow", seconds=0)])
    events = list(agent_for(model, [slow]).stream("Go"))
    assert [e.type for e in events] == [
        "usage", "tool_call", "tool_result", "text", "usage", "done",
    ]  # fmt: skip
    lines = list(lm.sse(events))
    assert lines[1].startswith("event: tool_call\ndata: ") and lines[1].endswith("\n\n")
    data = json.loads(lines[2].split("data: ", 1)[1])
    assert data["result"]["content"] == "slept 0.0" and data["result"]["error"] is None
    done = json.loads(lines[-1].split("data: ", 1)[1])
    assert done["status"] == "completed" and done["text"] == "All done."


def test_collect_calls_back_for_text_tools_and_the_end() -> None:
    model = Model([call(0, "slow", seconds=0)])
    seen: list[str] = []
    response = lm.collect(
        model.client().events("Go", tools=[slow]),
        on_text=lambda t: seen.append(f"text:{t}"),
        on_tool=lambda c, r: seen.append(f"tool:{c.name}:{'end' if r else 'start'}"),
        on_done=lambda r: seen.append("done"),
    )
    assert response.text == "All done."
    assert seen == ["tool:slow:start", "tool:slow:end", "text:All done.", "done"]


def test_events_of_a_plain_call_are_text_usage_and_done() -> None:
    model = Model()
    kinds = [e.type for e in model.client().events("Hi")]
    assert kinds == ["text", "usage", "done"]


def test_events_with_run_tools_false_report_the_calls_without_running_them() -> None:
    model = Model([call(0, "slow", seconds=5)])
    started = time.perf_counter()
    events = list(model.client().events("Go", tools=[slow], run_tools=False))
    assert time.perf_counter() - started < 2
    assert [e.type for e in events] == ["usage", "tool_call", "done"]


def test_the_registry_executes_a_call_from_its_json_arguments() -> None:
    registry = lm.ToolRegistry([slow])
    ok = registry.execute("slow", '{"seconds": 0}')
    assert ok.ok and ok.content == "slept 0.0"
    broken = registry.execute("slow", "{not json")
    assert broken.error is not None and "not valid JSON" in broken.error
    with pytest.raises(lm.ConfigError, match="no tool named 'nope'"):
        registry.get("nope")
    assert "slow" in registry and registry.names() == ["slow"]


def test_a_second_run_continues_and_reset_forgets() -> None:
    model = Model([call(0, "slow", seconds=0)])
    agent = agent_for(model, [slow], system="Be brief.")
    agent.run("First")
    agent.run("Second")
    sent = model.transport.bodies[-1]["messages"]
    assert [m["role"] for m in sent] == [
        "system", "user", "assistant", "tool", "assistant", "user",
    ]  # fmt: skip
    agent.reset()
    assert len(agent.conversation) == 0


def test_bad_agent_settings_are_refused() -> None:
    with pytest.raises(lm.ConfigError, match="max_turns"):
        lm.Agent(max_turns=0)
    with pytest.raises(lm.ConfigError, match="tool_timeout"):
        lm.Agent(tool_timeout=-1)


@pytest.mark.model
def test_the_local_model_calls_a_tool_and_answers_from_its_result() -> None:
    def get_weather(city: str) -> str:
        """The current weather in a city.

        Args:
            city: The city's name.
        """
        return f"It is 31 degrees and sunny in {city}."

    agent = lm.Agent("local", tools=[get_weather], max_turns=3, temperature=0)
    result = agent.run("What is the weather in Madrid? Use the get_weather tool.")
    assert result.tool_calls and result.tool_calls[0].name == "get_weather"
    assert result.tool_calls[0].ok and "city" in result.tool_calls[0].arguments
    assert result.status in ("completed", "max_turns") and result.num_turns >= 2


def test_an_agents_conversation_exports_and_reloads_its_tool_steps(tmp_path: Any) -> None:
    model = Model([call(0, "slow", seconds=0)])
    agent = agent_for(model, [slow])
    agent.run("Go")
    text = agent.conversation.export(format="text")
    assert 'called slow({"seconds": 0})' in text and "slow -> slept 0.0" in text
    path = tmp_path / "agent.json"
    agent.conversation.save(path)
    back = lm.Conversation.load(path)
    assert back.to_dict() == agent.conversation.to_dict()
    assert [m.role for m in back.turns[0].messages()] == ["user", "assistant", "tool", "assistant"]


@pytest.mark.parametrize("how", ["run", "stream"])
def test_ctrl_c_stops_a_run_at_once_even_inside_a_slow_tool(how: str) -> None:
    import _thread
    import threading

    model = Model([call(0, "slow", seconds=5.0)])
    agent = agent_for(model, [slow])
    threading.Timer(0.5, _thread.interrupt_main).start()
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        if how == "run":
            agent.run("Sleep long")
        else:
            for _event in agent.stream("Sleep long"):
                pass
    assert time.perf_counter() - started < 2.0, "the 5 s tool was not waited for"
    assert len(agent.conversation) == 0, "an interrupted run records no turn"
