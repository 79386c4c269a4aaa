"""%%llm --tools: the agent loop in a cell. Each tool call shows as it happens and opens to its
result, the answer streams in as Markdown, _llm holds the final Response, a --session keeps
the calls, and an unknown or wrong tool name is a UsageError naming it."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

import llm_magics as lm
from llm_magics._client import registry
from llm_magics._core.session import SESSION
from tests._chat.test_agent import Model, call
from tests.magics_helpers import FakeRegistry, ip

__all__ = ["ip"]  # fixtures


def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city's name.
    """
    return f"18C and sunny in {city}"


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Model:
    scripted = Model([call(0, "get_weather", city="Paris"), call(1, "get_weather", city="Rome")])
    scripted.answer = "**Both** are sunny."
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdefWXYZ")
    SESSION.put(registry.Registry, FakeRegistry(scripted.transport))
    return scripted


def run(ip: Any, line: str, body: str) -> Any:
    with capture_output() as captured:
        ip.run_cell_magic("llm", line, body)
    return captured


def test_a_tools_cell_shows_each_call_then_streams_the_answer(ip: Any, model: Model) -> None:
    ip.user_ns["get_weather"] = get_weather
    shown = run(ip, "openai:gpt-4o-mini --tools get_weather", "Weather in Paris and Rome?")
    model.transport.assert_clean()
    htmls = [o.data.get("text/html", "") for o in shown.outputs]
    calls = [h for h in htmls if "llm-magics-tool" in h]
    assert len(calls) == 2
    assert "get_weather(city=&quot;Paris&quot;) → 18C and sunny in Paris" in calls[0]
    assert "<details" in calls[0], "each call opens to its full result"
    markdown = [o.data["text/markdown"] for o in shown.outputs if "text/markdown" in o.data]
    assert markdown[-1] == "**Both** are sunny."
    response = ip.user_ns["_llm"]
    assert isinstance(response, lm.Response) and response.text == "**Both** are sunny."
    assert [r["name"] for r in response.raw["tool_rounds"]] == ["get_weather", "get_weather"]
    sent = model.transport.bodies[1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]


def test_a_tools_cell_with_a_session_keeps_the_calls_in_it(ip: Any, model: Model) -> None:
    ip.user_ns["get_weather"] = get_weather
    run(ip, "openai:gpt-4o-mini --tools get_weather --session trip", "Weather?")
    turn = lm.session("trip").turns[0]
    assert [m.role for m in turn.messages()] == ["user", "assistant", "tool", "tool", "assistant"]
    run(ip, "openai:gpt-4o-mini --session trip", "Thanks!")
    sent = model.transport.bodies[-1]["messages"]
    assert [m["role"] for m in sent][-3:] == ["tool", "assistant", "user"]


def test_an_unknown_or_wrong_tool_name_is_a_usage_error_naming_it(ip: Any, model: Model) -> None:
    ip.user_ns["get_weather"] = get_weather
    ip.user_ns["answer"] = 42
    with pytest.raises(
        UsageError, match=r"no function named 'get_wether'.*Did you mean get_weather"
    ):
        run(ip, "openai:gpt-4o-mini --tools get_wether", "Weather?")
    with pytest.raises(UsageError, match="'answer' is a int, not a function"):
        run(ip, "openai:gpt-4o-mini --tools answer", "Weather?")
    assert model.transport.bodies == [], "nothing was sent"
