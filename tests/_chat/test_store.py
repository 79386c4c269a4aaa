"""The session store: conversations saved by name in one folder (LLM_MAGICS_SESSIONS_DIR, else
the user data dir), read back whole, listed without their media, names that are always one
file of the folder, and saves a concurrent reader never sees half of."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
import time
from pathlib import Path

import pytest

import llm_magics as lm
from llm_magics._chat.memory import Conversation
from llm_magics._chat.store import SessionStore, check_name
from llm_magics._core.types import MediaPart, Response, Usage

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))


def answer(text: str, *, cost: float | None = 0.001, model: str = "gpt-4o-mini") -> Response:
    return Response(
        text, model, "openai", usage=Usage(10, 4), finish_reason="stop", cost=cost
    )  # fmt: skip


def two_turns(name: str = "review") -> Conversation:
    conv = Conversation(name, model="openai:gpt-4o-mini", system="be brief")
    conv.add("one?", answer("1"))
    conv.add("two?", answer("2", cost=None))
    return conv


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(tmp_path / "store")


def test_a_saved_session_loads_back_with_its_turns_and_settings(store: SessionStore) -> None:
    path = store.save(two_turns())
    assert path == store.folder / "review.json" and path.is_file()
    back = store.load("review")
    assert (back.name, back.model, back.system) == ("review", "openai:gpt-4o-mini", "be brief")
    assert [t.answer for t in back.turns] == ["1", "2"]
    assert back.usage.calls == 2 and back.usage.unpriced == 1


def test_the_folder_comes_from_the_environment_else_the_user_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLM_MAGICS_SESSIONS_DIR", str(tmp_path / "mine"))
    assert SessionStore().folder == tmp_path / "mine"
    assert lm.session_store().folder == tmp_path / "mine"
    assert lm.session_store(tmp_path / "other").folder == tmp_path / "other"
    monkeypatch.delenv("LLM_MAGICS_SESSIONS_DIR")
    import platformdirs

    expected = Path(platformdirs.user_data_dir("llm_magics", appauthor=False)) / "sessions"
    assert SessionStore().folder == expected


def test_the_folder_is_made_owner_only(store: SessionStore) -> None:
    store.save(two_turns())
    assert stat.S_IMODE(store.folder.stat().st_mode) == 0o700


def test_an_unknown_name_names_the_folder_and_the_closest_saved_names(
    store: SessionStore,
) -> None:
    store.save(two_turns("review"))
    store.save(two_turns("reviews-2"))
    store.save(two_turns("zebra"))
    with pytest.raises(lm.ConfigError) as caught:
        store.load("reveiw")
    message = str(caught.value)
    assert str(store.folder) in message
    assert "closest: review, reviews-2" in message and "zebra" not in message


def test_an_unknown_name_in_an_empty_store_says_how_to_start_one(store: SessionStore) -> None:
    with pytest.raises(lm.ConfigError, match=r"has none yet\. Start one with `llm-magics chat`"):
        store.load("anything")
    with pytest.raises(lm.ConfigError, match="has none yet"):
        store.delete("anything")


@pytest.mark.parametrize("bad", ["", "..", ".", "../x", "a/b", "a\\b", ".hidden", "a b", "x" * 101])
def test_a_name_that_is_not_one_file_of_the_folder_is_refused_saying_what_is_allowed(
    store: SessionStore, bad: str
) -> None:
    with pytest.raises(lm.ConfigError, match=re.escape("letters, digits, '.', '_' and '-'")):
        store.save(two_turns(), name=bad)
    with pytest.raises(lm.ConfigError, match="session name"):
        store.load(bad)
    assert not store.folder.exists() or not any(store.folder.iterdir())


def test_a_path_given_as_a_name_points_to_conversation_load() -> None:
    with pytest.raises(lm.ConfigError, match=r"lm.Conversation.load\(path\)"):
        check_name("sessions/review.json")


def test_names_lists_saved_sessions_only_sorted(store: SessionStore) -> None:
    for name in ("b-2", "a.1", "C_3"):
        store.save(two_turns(name))
    (store.folder / ".saving-leftover").mkdir()
    (store.folder / "notes.txt").write_text("not a session")
    (store.folder / ".chat_history").write_text("history")
    assert store.names() == ["C_3", "a.1", "b-2"]
    assert "a.1" in store and "missing" not in store and "../etc" not in store


def test_entries_list_model_turns_tokens_cost_and_last_activity(store: SessionStore) -> None:
    conv = two_turns()
    conv.turns[0].at, conv.turns[1].at = 1_700_000_000.0, 1_700_000_500.0
    store.save(conv)
    empty = Conversation("empty")
    empty.add_user("waiting")
    store.save(empty)
    (entry,) = [e for e in store.entries() if e.name == "review"]
    assert (entry.model, entry.turns, entry.calls) == ("openai:gpt-4o-mini", 2, 2)
    assert (entry.input_tokens, entry.output_tokens, entry.tokens) == (20, 8, 28)
    assert (entry.cost, entry.unpriced) == (pytest.approx(0.001), 1)
    assert entry.last_activity == 1_700_000_500.0 and entry.path == store.path("review")
    assert [e.name for e in store.entries()] == ["review", "empty"], "least recent first"


def test_an_unreadable_file_is_listed_with_its_problem_and_the_others_still_are(
    store: SessionStore,
) -> None:
    store.save(two_turns())
    store.path("broken").write_text("{not json")
    entries = {e.name: e for e in store.entries()}
    assert entries["review"].turns == 2 and not entries["review"].problem
    assert "cannot read" in entries["broken"].problem and "broken.json" in entries["broken"].problem


def test_media_are_saved_beside_the_session_and_come_back(store: SessionStore) -> None:
    conv = Conversation("pics")
    conv.add(["What is in", MediaPart("image", "image/png", data=PNG)], answer("A cat."))
    store.save(conv)
    digest = MediaPart("image", "image/png", data=PNG).content_hash
    assert (store.folder / "pics.media" / digest).read_bytes() == PNG
    back = store.load("pics")
    (part,) = back.media().values()
    assert part.data == PNG
    store.delete("pics")
    assert not store.path("pics").exists() and not (store.folder / "pics.media").exists()
    assert store.names() == []


def test_save_under_another_name_and_load_takes_the_file_name(store: SessionStore) -> None:
    store.save(two_turns("review"), name="review-copy")
    assert store.load("review-copy").name == "review-copy"
    assert "review" not in store


def test_a_failed_save_leaves_the_previous_save_whole_and_no_temporary_files(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save(two_turns())
    before = store.path("review").read_text()
    conv = two_turns()
    conv.add("three?", answer("3"))

    def half_written(self: Conversation, path: str | os.PathLike[str]) -> str:
        Path(path).write_text(self.to_json()[:40])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Conversation, "save", half_written)
    with pytest.raises(lm.ConfigError, match=r"cannot save session 'review'.*No space left"):
        store.save(conv)
    assert store.path("review").read_text() == before
    assert sorted(p.name for p in store.folder.iterdir()) == ["review.json"]


def test_a_concurrent_reader_never_sees_half_a_save(store: SessionStore) -> None:
    conv = Conversation("big")
    for i in range(300):
        conv.add(f"question {i} " + "x" * 2000, answer("y" * 2000))
    store.save(conv)
    failures: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                json.loads(store.path("big").read_text())
            except BaseException as exc:  # any partial file shows as a JSON error
                failures.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            store.save(conv)
    finally:
        done.set()
        reader.join(5)
    assert failures == []


def test_open_makes_a_saved_session_the_kernels_session_of_that_name(
    store: SessionStore,
) -> None:
    store.save(two_turns("trip"))
    opened = store.open("trip")
    assert lm.session("trip") is opened and len(opened) == 2
    assert "trip" in [c.name for c in lm.sessions()]


def test_a_new_name_is_made_from_the_time_and_never_taken(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    from llm_magics._chat import store as store_module

    clock = types.SimpleNamespace(strftime=lambda fmt: "20250101-120000")
    monkeypatch.setattr(store_module, "time", clock)
    assert store.new_name() == "chat-20250101-120000"
    store.save(two_turns("chat-20250101-120000"))
    assert store.new_name() == "chat-20250101-120000-2"
    store.save(two_turns("chat-20250101-120000-2"))
    assert store.new_name("notes") == "notes-20250101-120000"
    assert store.new_name() == "chat-20250101-120000-3"
