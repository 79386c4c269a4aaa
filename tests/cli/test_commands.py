"""The non-interactive commands with captured output: models, sessions, export, metrics and
summarize, over the same session store as ``lm.session_store()``; unknown sessions, missing
keys and unknown models are one line with exit status 1, and no key is ever printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import llm_magics as lm
from llm_magics._chat.memory import Conversation
from llm_magics._chat.store import SessionStore
from llm_magics._core.types import Response, Usage
from tests.cli.conftest import Run
from tests.magics_helpers import KEY, MODEL, FakeOpenAI, fake

__all__ = ["fake"]  # fixtures


def answer(text: str, model: str = "gpt-4o-mini", cost: float | None = 0.0015) -> Response:
    return Response(text, model, "openai", usage=Usage(100, 20), finish_reason="stop", cost=cost)


def saved(store: SessionStore, name: str = "review", *, turns: int = 2) -> Conversation:
    conv = Conversation(name, model=MODEL, system="You review code.")
    for i in range(turns):
        conv.add(f"question {i}?", answer(f"answer {i}."))
    store.save(conv)
    return conv


# --- models -------------------------------------------------------------------------------


def test_models_lists_every_provider_with_its_key_status_and_known_models(run: Run) -> None:
    ran = run("models")
    assert ran.status == 0
    lines = ran.out.splitlines()
    assert lines[0].split() == ["provider", "key", "default", "model"]
    for provider in ("openai", "anthropic", "gemini", "groq", "cerebras", "ollama", "local"):
        assert any(line.startswith(provider + " ") for line in lines), provider
    assert "missing (set OPENAI_API_KEY)" in ran.out and "no key needed" in ran.out
    assert "gpt-4o-mini" in ran.out and "claude-haiku-4-5" in ran.out
    assert "local: any model it has (free" in ran.out


def test_models_shows_a_configured_key_by_its_variable_never_the_key(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    ran = run("models")
    assert "configured (1 key, OPENAI_API_KEY)" in ran.out
    assert KEY not in ran.out and KEY[-8:] not in ran.out


def test_models_of_one_provider_shows_prices_and_the_list_its_api_gives(
    run: Run, fake: FakeOpenAI
) -> None:
    ran = run("models", "openai")
    assert ran.status == 0
    (row,) = [line for line in ran.out.splitlines() if line.startswith("gpt-4o-mini ")]
    assert row.split() == ["gpt-4o-mini", "128,000", "16,384", "$0.15", "$0.60"]
    assert "2 model(s) listed by openai:\n  openai:gpt-a\n  openai:gpt-b" in ran.out
    offline = run("models", "openai:gpt-4o", "--offline")
    assert "gpt-4o-mini" in offline.out and "listed by" not in offline.out


def test_models_without_the_key_lists_what_is_known_and_says_which_variable_to_set(
    run: Run,
) -> None:
    ran = run("models", "groq")
    assert ran.status == 0 and "llama-3.3-70b-versatile" in ran.out
    assert "Set GROQ_API_KEY to also see the models groq's API lists now." in ran.out


def test_models_of_an_unknown_provider_is_one_error_line(run: Run) -> None:
    ran = run("models", "nope")
    assert ran.status == 1 and ran.out == ""
    assert ran.error_lines == [ran.error_lines[0]]
    assert ran.error_lines[0].startswith("llm-magics: error: unknown model 'nope'")


# --- sessions -----------------------------------------------------------------------------


def test_sessions_lists_id_model_turns_tokens_cost_and_last_activity(
    run: Run, store: SessionStore
) -> None:
    conv = saved(store, "review")
    conv.turns[0].at, conv.turns[1].at = 1_699_990_000.0, 1_700_000_000.0
    store.save(conv)
    other = Conversation("notes")
    other.add("q", answer("a", cost=None))
    store.save(other)
    ran = run("sessions")
    assert ran.status == 0
    header, _rule, *rows = ran.out.splitlines()
    assert header.split() == ["session", "model", "turns", "tokens", "cost", "last", "activity"]
    cells = {row.split()[0]: row.split() for row in rows}
    assert cells["review"][:5] == ["review", MODEL, "2", "240", "$0.003"]
    assert " ".join(cells["review"][5:]).startswith("2023-11-1")
    assert cells["notes"][:5] == ["notes", "openai:gpt-4o-mini", "1", "120", "unknown"]
    assert [row.split()[0] for row in rows] == ["review", "notes"], "least recent first"


def test_sessions_of_an_empty_store_says_where_it_looked_and_how_to_start(
    run: Run, store: SessionStore
) -> None:
    ran = run("sessions")
    assert ran.status == 0
    assert ran.out.strip() == (
        f"No saved sessions in {store.folder} yet: start one with `llm-magics chat`."
    )


def test_an_unreadable_session_file_is_a_warning_line_and_the_rest_are_listed(
    run: Run, store: SessionStore
) -> None:
    saved(store)
    store.path("broken").write_text("{nope")
    ran = run("sessions")
    assert ran.status == 0 and "review" in ran.out and "broken" not in ran.out
    assert len(ran.error_lines) == 1 and ran.error_lines[0].startswith(
        "llm-magics: warning: cannot read"
    )


# --- export -------------------------------------------------------------------------------


def test_export_prints_json_by_default_text_and_markdown_on_request(
    run: Run, store: SessionStore
) -> None:
    conv = saved(store)
    data = json.loads(run("export", "review").out)
    assert data == json.loads(conv.to_json())
    text = run("export", "review", "--format", "text").out
    assert text.startswith("Conversation review\nSystem: You review code.\n")
    assert "You: question 1?" in text and "openai:gpt-4o-mini: answer 1." in text
    assert run("export", "review", "--format", "md").out.startswith("# Conversation `review`")


def test_export_writes_a_file_in_the_format_asked_or_of_its_suffix(
    run: Run, store: SessionStore, tmp_path: Path
) -> None:
    saved(store)
    ran = run("export", "review", "--output", str(tmp_path / "r.md"))
    assert ran.out.strip() == f"Wrote 2 turn(s) of review to {tmp_path / 'r.md'}"
    assert (tmp_path / "r.md").read_text().startswith("# Conversation `review`")
    run("export", "review", "-o", str(tmp_path / "r.out"))
    assert json.loads((tmp_path / "r.out").read_text())["name"] == "review"
    run("export", "review", "--format", "text", "-o", str(tmp_path / "r.json"))
    assert (tmp_path / "r.json").read_text().startswith("Conversation review")


def test_export_of_an_unknown_session_names_the_closest_in_one_line(
    run: Run, store: SessionStore
) -> None:
    saved(store, "review")
    ran = run("export", "reveiw")
    assert ran.status == 1 and ran.out == ""
    assert len(ran.error_lines) == 1
    assert "no saved session 'reveiw'" in ran.err and "closest: review" in ran.err
    assert str(store.folder) in ran.err


def test_export_into_a_missing_folder_is_one_error_line(run: Run, store: SessionStore) -> None:
    saved(store)
    ran = run("export", "review", "--output", "/no/such/folder/r.json")
    assert ran.status == 1 and len(ran.error_lines) == 1
    assert "the folder /no/such/folder does not exist" in ran.err


def test_export_never_prints_a_key_pasted_into_the_conversation(
    run: Run, store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    conv = Conversation("leak")
    conv.add(f"my key is {KEY}", answer("noted"))
    store.save(conv)
    for fmt in ("json", "text", "md"):
        out = run("export", "leak", "--format", fmt).out
        assert KEY not in out and "[redacted key ...cdef]" in out


# --- metrics ------------------------------------------------------------------------------


def test_metrics_shows_calls_tokens_and_cost_by_model_and_in_total(
    run: Run, store: SessionStore
) -> None:
    conv = saved(store)
    conv.add("bigger?", answer("yes", model="gpt-4o", cost=None))
    store.save(conv)
    ran = run("metrics", "review")
    assert ran.status == 0
    assert ran.out.startswith("Session review: 3 turn(s), ")
    rows = {line.split()[0]: line.split() for line in ran.out.splitlines()[4:7]}
    assert rows["openai:gpt-4o-mini"][:6] == [
        "openai:gpt-4o-mini",
        "2",
        "200",
        "40",
        "240",
        "$0.003",
    ]
    assert rows["openai:gpt-4o"][1:6] == ["1", "100", "20", "120", "unknown"]
    assert rows["total"][1:6] == ["3", "300", "60", "360", "$0.003+?"]


def test_metrics_of_an_unknown_session_is_one_error_line(run: Run) -> None:
    ran = run("metrics", "ghost")
    assert ran.status == 1 and ran.error_lines[0].startswith("llm-magics: error: no saved session")
    assert len(ran.error_lines) == 1


# --- summarize ----------------------------------------------------------------------------


def test_summarize_prints_the_summary_and_saves_it_as_the_sessions_memory(
    run: Run, store: SessionStore, fake: FakeOpenAI
) -> None:
    saved(store)
    fake.reply = "They asked two questions about code."
    ran = run("summarize", "review")
    assert ran.status == 0 and ran.out.strip() == "They asked two questions about code."
    back = store.load("review")
    assert back.summary.text == "They asked two questions about code." and back.summary.covers == 2
    assert back.usage.summary_calls == 1
    assert "memory of a conversation" in fake.bodies[0]["messages"][0]["content"]


def test_summarize_writes_to_a_file_with_another_model(
    run: Run, store: SessionStore, fake: FakeOpenAI, tmp_path: Path
) -> None:
    saved(store)
    fake.reply = "A summary."
    ran = run("summarize", "review", "--model", "openai:gpt-4o", "-o", str(tmp_path / "s.txt"))
    assert ran.status == 0 and "Wrote the summary of review (2 turn(s))" in ran.out
    assert (tmp_path / "s.txt").read_text() == "A summary.\n"
    assert fake.bodies[0]["model"] == "gpt-4o"


def test_summarize_fails_in_one_line_without_turns_or_without_the_key(
    run: Run, store: SessionStore
) -> None:
    store.save(Conversation("empty"))
    ran = run("summarize", "empty")
    assert ran.status == 1 and ran.error_lines == [
        "llm-magics: error: session 'empty' has no turns to summarise yet"
    ]
    saved(store)
    ran = run("summarize", "review")
    assert ran.status == 1 and len(ran.error_lines) == 1
    assert "no API key for OpenAI: set OPENAI_API_KEY" in ran.err


def test_the_store_is_the_one_python_uses(run: Run, store: SessionStore) -> None:
    saved(lm.session_store(), "from-python")
    assert "from-python" in run("sessions").out
    assert store.folder == lm.session_store().folder
