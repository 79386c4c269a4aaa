"""Named conversations: lm.session(name) is the object %%llm --session name continues, lm.sessions()
lists them; fork, snapshot/restore and save/load keep everything and share nothing; a file that
is not a saved conversation is refused with what to give instead."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import llm_magics as lm
from llm_magics._core.types import MediaPart, Response, TextPart, Usage
from tests.magics_helpers import KEY, FakeOpenAI, fake, ip

__all__ = ["fake", "ip"]  # fixtures


def answer(text: str) -> Response:
    return Response(text, "gpt-4o-mini", "openai", usage=Usage(5, 2), finish_reason="stop")


def test_lm_session_is_the_conversation_a_session_cell_continues(ip: Any, fake: FakeOpenAI) -> None:
    ip.run_cell_magic("llm", "--session plan", "Day one?")
    conv = lm.session("plan")
    assert len(conv) == 1 and conv.turns[0].user.text == "Day one?"
    conv.add("Typed in Python", answer("noted"))
    ip.run_cell_magic("llm", "--session plan", "Day two?")
    sent = [m["content"] for m in fake.bodies[-1]["messages"]]
    assert "Typed in Python" in sent and sent[-1] == "Day two?"
    assert [c.name for c in lm.sessions()] == ["plan"]


def test_a_session_cell_sends_only_the_history_that_fits_the_sessions_budget(
    ip: Any, fake: FakeOpenAI
) -> None:
    lm.session("tight", max_tokens=60)
    for i in range(6):
        ip.run_cell_magic("llm", "--session tight", f"question {i} " + "x" * 60)
    sent = [m["content"] for m in fake.bodies[-1]["messages"]]
    assert sent[-1].startswith("question 5") and len(sent) < 11, "older turns left out"
    assert len(lm.session("tight")) == 6 and lm.session("tight").last_fit.dropped > 0  # type: ignore[union-attr]


def test_session_settings_apply_to_the_named_conversation() -> None:
    conv = lm.session("s", system="Be brief.", max_tokens=500, truncation="sliding")
    assert lm.session("s") is conv
    assert (conv.system, conv.max_tokens, conv.truncation) == ("Be brief.", 500, "sliding")
    with pytest.raises(lm.ConfigError, match="unknown session setting 'temprature'"):
        lm.session("s", temprature=0)


def test_a_fork_starts_equal_and_goes_on_alone() -> None:
    conv = lm.Conversation("main", system="S", max_tokens=800, truncation="drop_middle")
    conv.add("one?", answer("1"))
    twin = conv.fork("branch")
    assert (twin.name, twin.system, twin.max_tokens, twin.truncation) == (
        "branch",
        "S",
        800,
        "drop_middle",
    )
    assert [t.answer for t in twin.turns] == ["1"]
    twin.add("two?", answer("2"))
    assert len(conv) == 1 and len(twin) == 2


def test_restore_goes_back_to_a_snapshot() -> None:
    conv = lm.Conversation("c", system="S")
    conv.add("one?", answer("1"))
    saved = conv.snapshot()
    conv.add("two?", answer("2"))
    conv.system = "changed"
    conv.restore(saved)
    assert [t.answer for t in conv.turns] == ["1"] and conv.system == "S"
    json.dumps(saved)  # a snapshot is plain JSON data


def test_save_and_load_round_trip_without_any_key(tmp_path: Path) -> None:
    conv = lm.Conversation("trip", system="S", model="openai:gpt-4o-mini", max_tokens=900)
    image = MediaPart("image", "image/png", data=b"\x89PNG fake")
    conv.add([TextPart("look"), image], answer("a picture"))
    conv.add(f"my key is {KEY}", answer("do not paste keys"))
    path = tmp_path / "trip.json"
    conv.save(path)
    assert KEY not in path.read_text()
    back = lm.Conversation.load(path)
    assert (back.name, back.system, back.model, back.max_tokens) == (
        "trip",
        "S",
        "openai:gpt-4o-mini",
        900,
    )
    assert [t.answer for t in back.turns] == ["a picture", "do not paste keys"]
    assert image.content_hash[:12] in back.turns[0].user.text, "media come back by hash"
    assert back.to_dict() == lm.Conversation.load(path).to_dict()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "is not JSON"),
        ('{"model": "gpt-4o", "messages": []}', "not a saved conversation"),
        ("[1, 2]", "not a saved conversation"),
    ],
)
def test_loading_a_file_that_is_not_a_saved_conversation_says_so(
    tmp_path: Path, content: str, says: str
) -> None:
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(lm.ConfigError, match=says):
        lm.Conversation.load(path)
    with pytest.raises(lm.ConfigError, match="no such file"):
        lm.Conversation.load(tmp_path / "missing.json")
