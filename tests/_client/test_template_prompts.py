"""c.chat(t, **vars) and c.stream(t, ...) on the wire: the template's system prompt lands where
each provider wants it (Anthropic's top-level ``system``, Gemini's ``systemInstruction``,
OpenAI's system message), every body is validated against the provider's published spec by
SpecTransport, keywords are variables or options as they should be, and nothing is sent
until the template renders."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from pydantic import BaseModel

import llm_magics as lm
from tests.providers import test_anthropic as anthropic
from tests.providers import test_gemini as gemini
from tests.providers import test_openai_compat as openai


def bug_finder() -> lm.Template:
    return lm.Template(
        "bug_finder",
        system="You are a senior code reviewer. Find the bugs.",
        user="Language: {language}\n\nCode:\n```\n{code}\n```",
        defaults={"language": "Python"},
    )


CODE = 'def f(d): return d["k"] + {x}'


def test_anthropic_gets_the_templates_system_prompt_top_level() -> None:
    c, transport = anthropic.client_for(anthropic.answer([anthropic.text_block("A bug.")]))
    r = c.chat(bug_finder(), code=CODE, language="Go", temperature=0, max_tokens=50)
    transport.assert_clean()
    body = transport.bodies[0]
    assert body["system"] == "You are a senior code reviewer. Find the bugs."
    assert body["messages"] == [
        {"role": "user", "content": f"Language: Go\n\nCode:\n```\n{CODE}\n```"}
    ]
    assert (body["temperature"], body["max_tokens"]) == (0, 50)
    assert r.text == "A bug."


def test_anthropic_puts_the_calls_system_first_and_the_templates_after_it() -> None:
    c, transport = anthropic.client_for(anthropic.answer([anthropic.text_block("ok")]))
    c.chat(bug_finder(), code="x = 1", system="Be brief.")
    transport.assert_clean()
    assert transport.bodies[0]["system"] == (
        "Be brief.\n\nYou are a senior code reviewer. Find the bugs."
    )


def test_gemini_gets_the_templates_system_prompt_as_its_system_instruction() -> None:
    c, transport = gemini.client_for(gemini.answer([{"text": "A bug."}]))
    c.chat(bug_finder(), code=CODE, temperature=0)
    transport.assert_clean()
    body = transport.bodies[0]
    assert body["systemInstruction"] == {
        "parts": [{"text": "You are a senior code reviewer. Find the bugs."}]
    }
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": f"Language: Python\n\nCode:\n```\n{CODE}\n```"}]}
    ]
    assert body["generationConfig"]["temperature"] == 0


def test_a_stream_sends_the_rendered_template_as_openai_messages() -> None:
    events = [
        openai.chunk({"role": "assistant", "content": ""}),
        openai.chunk({"content": "Bonjour"}, finish="stop"),
        openai.chunk({}, usage={"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}),
    ]

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, content=openai.sse(events), headers={"content-type": "text/event-stream"}
        )

    c, transport = openai.client_for("openai", handler)
    stream = c.stream(lm.templates.translate, text="Hello", language="French", max_tokens=9)
    assert list(stream) == ["Bonjour"]
    transport.assert_clean()
    body = transport.bodies[0]
    assert body["stream"] is True and body["max_completion_tokens"] == 9
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "into French" in body["messages"][0]["content"]
    assert body["messages"][1] == {"role": "user", "content": "Hello"}


def ok(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, json=openai.completion("ok"))


def test_a_default_overridden_at_call_time_wins_on_the_wire() -> None:
    c, transport = openai.client_for("openai", ok)
    c.chat(bug_finder().with_defaults(language="Rust"), code="x")
    c.chat(bug_finder().with_defaults(language="Rust"), code="x", language="Zig")
    transport.assert_clean()
    users = [b["messages"][-1]["content"] for b in transport.bodies]
    assert users[0].startswith("Language: Rust") and users[1].startswith("Language: Zig")


def test_a_missing_variable_sends_nothing() -> None:
    c, transport = openai.client_for("openai", ok)
    with pytest.raises(lm.ConfigError, match=r"template 'bug_finder' needs a value for \{code\}"):
        c.chat(bug_finder(), language="Go")
    with pytest.raises(lm.ConfigError, match=r"needs a value for \{code\}"):
        list(c.stream(bug_finder()))
    assert transport.requests == []


def test_a_keyword_that_is_neither_variable_nor_option_names_the_closest_and_sends_nothing() -> (
    None
):
    c, transport = openai.client_for("openai", ok)
    with pytest.raises(lm.ConfigError) as info:
        c.chat(bug_finder(), code="x", langauge="Go")
    assert str(info.value) == (
        "langauge= is neither an option of chat nor a variable of template 'bug_finder'. "
        "Did you mean language=? Its variables: language, code."
    )
    with pytest.raises(
        lm.ConfigError,
        match=r"unknown option temprature=.*Did you mean temperature=\?.*no variable of template 'bug_finder'",
    ):
        c.chat(bug_finder(), code="x", temprature=0)
    assert transport.requests == []


def test_with_a_plain_prompt_an_unknown_option_is_still_an_unknown_option() -> None:
    c, transport = openai.client_for("openai", ok)
    with pytest.raises(lm.ConfigError) as info:
        c.chat("Hi", code="x")
    assert str(info.value) == (
        "unknown option code= for chat. To send a field the package does not know, pass "
        "extra_body={'code': ...}."
    )
    assert transport.requests == []


class Bug(BaseModel):
    line: int
    problem: str


def test_request_options_work_beside_template_variables() -> None:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=openai.completion('{"line": 1, "problem": "minus"}'))

    c, transport = openai.client_for("openai", answer)
    r = c.chat(
        bug_finder(), code="def add(a, b): return a - b", schema=Bug, seed=3, top_p=0.5,
        stop=["END"], extra_body={"user": "u1"},
    )  # fmt: skip
    transport.assert_clean()
    body: dict[str, Any] = transport.bodies[0]
    assert body["response_format"]["type"] == "json_schema"
    assert (body["seed"], body["top_p"], body["stop"], body["user"]) == (3, 0.5, ["END"], "u1")
    assert r.parsed == Bug(line=1, problem="minus")


def test_a_template_answer_is_cached_like_any_prompt() -> None:
    transport = openai.SpecTransport("openai", ok)
    c = lm.client("openai:gpt-4o-mini", api_key=openai.KEY, transport=transport)
    first = c.chat(bug_finder(), code="x")
    again = c.chat(bug_finder(), code="x")
    other = c.chat(bug_finder(), code="y")
    assert (first.cached, again.cached, other.cached) == (False, True, False)
    assert len(transport.requests) == 2


async def test_achat_fills_a_template_too() -> None:
    c, transport = openai.client_for("openai", ok)
    r = await c.achat(lm.templates.qa, question="Why?")
    assert r.text == "ok"
    assert transport.bodies[0]["messages"][-1] == {"role": "user", "content": "Why?"}


def test_a_template_with_only_defaults_renders_without_keywords() -> None:
    c, transport = openai.client_for("openai", ok)
    c.chat(bug_finder().with_defaults(code="pass"))
    assert transport.bodies[0]["messages"][-1]["content"].endswith("```\npass\n```")
