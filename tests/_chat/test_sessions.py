"""Named conversations: lm.session(name) is the object %%llm --session name continues, lm.sessions()
lists them; fork, snapshot/restore and save/load keep everything and share nothing; a file that
is not a saved conversation is refused with what to give instead."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import llm_magics as lm
from llm_magics._chat.summary import Summary
from llm_magics._chat.turns import SummaryCall
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


def test_a_bad_session_setting_is_refused_before_any_is_applied() -> None:
    conv = lm.session("s", max_tokens=500)
    with pytest.raises(lm.ConfigError, match="max_tokens must be a positive number"):
        lm.session("s", system="new", max_tokens=-5)
    with pytest.raises(lm.ConfigError, match="max_history must be >= 0"):
        lm.session("s", max_history=-1)
    assert (conv.system, conv.max_tokens, conv.max_history) == (None, 500, None)


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


def test_save_and_load_round_trip_equal_with_media_and_summary_and_no_key(tmp_path: Path) -> None:
    conv = lm.Conversation("trip", system="S", model="openai:gpt-4o-mini", max_tokens=900)
    image = MediaPart("image", "image/png", data=b"\x89PNG fake")
    conv.add([TextPart("look"), image], answer("a picture"))
    conv.add(f"my key is {KEY}", answer("do not paste keys"))
    conv.summary = Summary("They looked at a picture.", 1, [SummaryCall("openai:m", Usage(9, 3))])
    path = tmp_path / "trip.json"
    conv.save(path)
    assert KEY not in path.read_text()
    assert (tmp_path / "trip.media" / image.content_hash).read_bytes() == image.data
    back = lm.Conversation.load(path)
    assert (back.name, back.system, back.model, back.max_tokens) == (
        "trip",
        "S",
        "openai:gpt-4o-mini",
        900,
    )
    assert [t.answer for t in back.turns] == ["a picture", "do not paste keys"]
    assert back.turns[0].user.parts[1] == image, "media come back from their bytes, by hash"
    assert back.summary == conv.summary and back.usage.summary_calls == 1
    assert back.to_dict() == json.loads(path.read_text()), "loads back equal"


def test_media_missing_beside_a_saved_file_come_back_as_placeholders_with_a_warning(
    tmp_path: Path,
) -> None:
    conv = lm.Conversation("trip")
    image = MediaPart("image", "image/png", data=b"\x89PNG fake")
    conv.add([TextPart("look"), image], answer("a picture"))
    conv.export(tmp_path / "trip.json")  # an export holds hashes only, no media folder
    with pytest.warns(UserWarning, match="1 media part"):
        back = lm.Conversation.load(tmp_path / "trip.json")
    assert image.content_hash[:12] in back.turns[0].user.text
    assert back.turns[0].answer == "a picture"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "is not JSON"),
        ('{"model": "gpt-4o", "messages": []}', "not a saved conversation"),
        ("[1, 2]", "not a saved conversation"),
        ('{"turns": ["q", "a"]}', "not a saved conversation"),
        ('{"kind": "chat.export", "turns": []}', "its kind is 'chat.export'"),
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


def test_usage_sums_the_turns_and_counts_the_unpriced_ones() -> None:
    conv = lm.Conversation("u")
    for cost in (0.002, None, 0.001):
        conv.add("q", Response("a", "m", "openai", usage=Usage(10, 4), cost=cost))
    used = conv.usage
    assert (used.calls, used.input_tokens, used.output_tokens, used.tokens) == (3, 30, 12, 42)
    assert used.cost == pytest.approx(0.003) and used.unpriced == 1


def test_the_text_export_names_who_said_what_and_holds_no_key(tmp_path: Path) -> None:
    conv = lm.Conversation("t", system="Be kind.")
    conv.add(f"hello, my key is {KEY}", Response("hi", "gpt-4o-mini", "openai"))
    text = conv.export(tmp_path / "t.txt")
    assert text.splitlines()[:2] == ["Conversation t", "System: Be kind."]
    assert "You: hello, my key is" in text and KEY not in text
    assert "openai:gpt-4o-mini: hi" in text
    assert KEY not in (tmp_path / "t.txt").read_text()
    with pytest.raises(lm.ConfigError, match="md, json or text; got 'pdf'"):
        conv.export(format="pdf")  # type: ignore[arg-type]


def test_a_conversation_with_an_image_moves_from_openai_to_anthropic_mid_way() -> None:
    import asyncio

    import httpx2

    from tests.media_support import image_bytes
    from tests.providers.test_anthropic import message
    from tests.providers.test_openai_compat import completion
    from tests.support.specs import SpecTransport

    openai = SpecTransport(
        "openai", lambda r: httpx2.Response(200, json=completion("a red square"))
    )
    anthropic = SpecTransport(
        "anthropic",
        lambda r: httpx2.Response(200, json=message([{"type": "text", "text": "yes, red"}])),
    )
    key = "sk-test-0123456789abcdef"
    first = lm.client("openai:gpt-4o-mini", api_key=key, transport=openai, cache=False)
    second = lm.client("anthropic:claude-haiku-4-5", api_key=key, transport=anthropic, cache=False)
    conv = lm.Conversation("vision")
    picture = lm.Image(image_bytes(3000, 2000))
    conv.chat(["What is this?", picture], client=first)
    answer = asyncio.run(conv.achat("Is it red?", client=second))
    openai.assert_clean()
    anthropic.assert_clean()
    assert answer.text == "yes, red" and len(conv) == 2
    sent = anthropic.bodies[0]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    image = next(b for b in sent[0]["content"] if b["type"] == "image")
    import base64

    from tests.media_support import decode_image

    side = max(decode_image(base64.b64decode(image["source"]["data"])).size)
    assert side <= 1568, "sent again within Anthropic's limit"
