"""Conversations: history sent with each prompt (truncated to max_history, never lost from the
record), reset, Markdown/JSON export that never carries a key, and the named store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import llm_magics as lm
from llm_magics._chat.memory import Conversation, redact_secrets
from llm_magics._chat.sessions import Conversations
from llm_magics._core.types import MediaPart, Message, Response, Usage
from tests.magics_helpers import KEY, FakeOpenAI, fake, last_user_text

__all__ = ["fake"]  # fixtures


def answer(text: str, model: str = "m") -> Response:
    return Response(text, model, "openai", usage=Usage(5, 2), finish_reason="stop")


def roles(messages: list[Message]) -> list[tuple[str, str]]:
    return [(m.role, m.text) for m in messages]


def test_messages_are_the_history_followed_by_the_new_prompt() -> None:
    conv = Conversation("c")
    conv.add("one?", answer("1"))
    conv.add("two?", answer("2"))
    assert roles(conv.messages("three?")) == [
        ("user", "one?"),
        ("assistant", "1"),
        ("user", "two?"),
        ("assistant", "2"),
        ("user", "three?"),
    ]


@pytest.mark.parametrize(
    ("limit", "kept"),
    [(0, []), (1, ["q4"]), (2, ["q3", "q4"]), (None, ["q0", "q1", "q2", "q3", "q4"])],
)
def test_max_history_limits_the_turns_sent_but_keeps_the_record(
    limit: int | None, kept: list[str]
) -> None:
    conv = Conversation("c", max_history=limit)
    for i in range(5):
        conv.add(f"q{i}", answer(f"a{i}"))
    sent = [m.text for m in conv.messages("next") if m.role == "user"][:-1]
    assert sent == kept
    assert len(conv) == 5


def test_max_history_given_per_call_overrides_the_conversation_setting() -> None:
    conv = Conversation("c", max_history=10)
    for i in range(3):
        conv.add(f"q{i}", answer(f"a{i}"))
    assert len(conv.messages("x", max_history=1)) == 3


def test_a_negative_max_history_is_refused_with_the_rule() -> None:
    with pytest.raises(lm.ConfigError, match=">= 0"):
        Conversation("c", max_history=-1)


def test_add_records_model_usage_and_finish_reason() -> None:
    conv = Conversation("c")
    turn = conv.add("hi", answer("hello", model="gpt-x"))
    assert (turn.model, turn.usage.output_tokens, turn.finish_reason) == ("openai:gpt-x", 2, "stop")


def test_reset_forgets_the_turns_but_keeps_name_and_system() -> None:
    conv = Conversation("c", system="be brief")
    conv.add("hi", answer("hello"))
    conv.reset()
    assert (len(conv), conv.name, conv.system) == (0, "c", "be brief")


def test_markdown_export_shows_each_turn_and_media_as_hashes() -> None:
    conv = Conversation("review", system="You review code.")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
    conv.add(["What is in", MediaPart("image", "image/png", data=png)], answer("A cat."))
    md = conv.to_markdown()
    assert md.startswith("# Conversation `review`")
    assert "*System:* You review code." in md
    assert "What is in" in md and "A cat." in md
    assert "image/png" in md and MediaPart("image", "image/png", data=png).content_hash[:12] in md
    assert "5 → 2 tokens" in md


def test_json_export_round_trips_through_load(tmp_path: Path) -> None:
    conv = Conversation("c", system="sys", max_history=3)
    conv.add("q1", answer("a1"))
    conv.add("q2", answer("a2"))
    path = tmp_path / "c.json"
    text = conv.export(path)
    assert json.loads(path.read_text()) == json.loads(text)
    loaded = Conversation.load(path)
    assert (loaded.name, loaded.system, loaded.max_history) == ("c", "sys", 3)
    assert roles(loaded.messages("q3")) == roles(conv.messages("q3"))


def test_export_format_follows_the_suffix_or_the_argument(tmp_path: Path) -> None:
    conv = Conversation("c")
    conv.add("q", answer("a"))
    assert conv.export(tmp_path / "x.md").startswith("# Conversation")
    assert json.loads(conv.export(tmp_path / "x.txt", format="json"))["name"] == "c"
    with pytest.raises(lm.ConfigError, match="md, json or text"):
        conv.export(format="yaml")  # type: ignore[arg-type]


def test_exports_never_contain_a_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("GROQ_API_KEYS", "gsk-first-key-000111,gsk-second-key-222333")
    conv = Conversation("leaky", system=f"key is {KEY}")
    conv.add(f"my key is {KEY} and gsk-second-key-222333", answer(f"got {KEY}"))
    for text in (conv.to_markdown(), conv.to_json(), conv.export(format="json")):
        assert KEY not in text and "gsk-second-key-222333" not in text
        assert "[redacted key ...cdef]" in text


def test_redaction_ignores_short_values_and_other_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_API_KEY", "abc")
    monkeypatch.setenv("HOME_DIR_NAME", "verylongvalue123")
    assert redact_secrets("abc verylongvalue123") == "abc verylongvalue123"


def test_the_store_creates_conversations_on_first_use_and_resets_by_name() -> None:
    store = Conversations(max_history=4)
    a = store.get("a")
    assert store.get("a") is a and a.max_history == 4
    store.get("b")
    assert store.names() == ["a", "b"] and "a" in store and len(store) == 2
    assert store.reset("a") == ["a"]
    with pytest.raises(KeyError, match=r"no conversation named 'a'.*sessions: b"):
        store.get("a", create=False)
    with pytest.raises(KeyError, match="'zzz'"):
        store.reset("zzz")
    assert store.reset() == ["b"] and len(store) == 0


def test_chat_sends_the_history_and_system_prompt_and_records_the_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeOpenAI(reply=lambda body: f"turn {len(body['messages'])}: {last_user_text(body)}")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    client = lm.client("openai:gpt-4o-mini", transport=fake.transport, cache=False)
    conv = Conversation("c", system="Be brief.")
    first = conv.chat("Hi", client=client)
    second = conv.chat("Again", client=client)
    fake.transport.assert_clean()
    assert first.text == "turn 2: Hi"
    assert [(m["role"], m["content"]) for m in fake.bodies[1]["messages"]] == [
        ("system", "Be brief."),
        ("user", "Hi"),
        ("assistant", "turn 2: Hi"),
        ("user", "Again"),
    ]
    assert second.text == "turn 4: Again" and len(conv) == 2


def test_export_into_a_missing_folder_says_which_folder(tmp_path: Path) -> None:
    conv = Conversation("notes")
    conv.add("hi", Response("hello", "m", "openai"))
    target = tmp_path / "no" / "such" / "folder" / "notes.md"
    with pytest.raises(lm.ConfigError, match=r"folder .*folder does not exist"):
        conv.export(target)
    assert not target.parent.exists(), "nothing is created behind the user's back"


def test_exports_never_contain_a_key_given_as_api_key_either() -> None:
    held = "sk-given-as-an-argument-only-9876"
    lm.client("openai:m", api_key=held, cache=False)  # the package now holds it
    conv = Conversation("pasted")
    conv.add(f"here is {held}", answer("noted"))
    for text in (conv.to_markdown(), conv.to_json()):
        assert held not in text and "...9876" in text


def test_add_user_then_add_assistant_writes_one_turn_by_hand() -> None:
    conv = Conversation("c", system="S")
    conv.add_user("What is 2 + 2?")
    assert conv.turns[-1].pending
    conv.add_assistant("4")
    assert len(conv) == 1 and not conv.turns[0].pending
    assert roles(conv.messages("and 3 + 3?")) == [
        ("system", "S"),
        ("user", "What is 2 + 2?"),
        ("assistant", "4"),
        ("user", "and 3 + 3?"),
    ]
    assert conv.usage.calls == 0, "turns written by hand made no call"


def test_an_assistant_message_with_no_question_before_it_stands_alone() -> None:
    conv = Conversation("c")
    conv.add_assistant("Hello! Ask me anything.")
    assert roles(conv.messages("hi")) == [("assistant", "Hello! Ask me anything."), ("user", "hi")]
    assert "Hello! Ask me anything." in conv.to_markdown()


def test_chat_with_no_prompt_answers_the_question_waiting_from_add_user(fake: Any) -> None:
    conv = Conversation("c")
    conv.add_user("first question")
    conv.chat(model="openai:gpt-4o-mini")
    assert len(conv) == 1 and conv.turns[0].answer == "echo: first question"
    assert [m["role"] for m in fake.bodies[0]["messages"]] == ["user"]
    with pytest.raises(lm.ConfigError, match="nothing to ask"):
        conv.chat(model="openai:gpt-4o-mini")


def test_a_template_gives_the_system_and_shapes_each_turn_as_it_is_recorded(fake: Any) -> None:
    template = lm.Template(
        "reviewer",
        system="You review {language} code.",
        user="Review this:\n```\n{code}\n```\nFocus: {focus}",
        defaults={"language": "Python", "focus": "bugs"},
    )
    conv = Conversation("c", template=template)
    assert conv.system == "You review Python code."
    sent = conv.messages("x = 1")
    assert sent[0] == Message("system", "You review Python code.")
    assert sent[-1].text == "Review this:\n```\nx = 1\n```\nFocus: bugs"
    conv.chat("y = {2}", model="openai:gpt-4o-mini", focus="style")
    body = fake.bodies[-1]["messages"]
    assert body[-1]["content"] == "Review this:\n```\ny = {2}\n```\nFocus: style"
    assert conv.turns[0].user is not None
    assert conv.turns[0].user.text == body[-1]["content"], "the turn recorded is what was sent"
    again = Conversation("d", template="translate", system="Translate into Dutch.")
    assert again.system == "Translate into Dutch.", "a given system wins over the template's"
    with pytest.raises(lm.ConfigError, match=r"takes an lm\.Template"):
        Conversation("e", template=42)
