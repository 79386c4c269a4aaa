"""``llm-magics chat`` in-process, questions typed on stdin, answers from a scripted OpenAI
backend validated against OpenAI's spec: answers stream in and are saved turn by turn, the
slash commands, Ctrl-C during an answer and at the prompt, Ctrl-D, one-line errors, no key
ever shown, and a session going from Python to the terminal and back."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

import llm_magics as lm
from llm_magics._chat.memory import Conversation
from llm_magics._chat.store import SessionStore
from llm_magics.cli.chat import COMMANDS, ChatLoop
from tests.cli.conftest import Run
from tests.magics_helpers import KEY, MODEL, FakeOpenAI, fake, last_user_text

__all__ = ["fake"]  # fixtures


def test_answers_stream_in_with_a_usage_line_and_every_turn_is_saved_with_its_history(
    run: Run, fake: FakeOpenAI, store: SessionStore
) -> None:
    ran = run("chat", "--model", MODEL, "--session", "s1", typed="hello there\nand again\n")
    assert ran.status == 0 and ran.err == ""
    assert "session s1 (new)" in ran.out and f"model {MODEL}" in ran.out
    assert "echo: hello there" in ran.out and "echo: and again" in ran.out
    assert "openai:gpt-4o-mini · 11 → 7 tokens · $" in ran.out
    assert "session: 2 turn(s), 36 tokens" in ran.out
    assert "Saved session s1 (2 turn(s))" in ran.out
    saved = store.load("s1")
    assert [t.answer for t in saved.turns] == ["echo: hello there", "echo: and again"]
    assert saved.model == MODEL
    assert [m["role"] for m in fake.bodies[1]["messages"]] == ["user", "assistant", "user"]
    assert all(body["stream"] for body in fake.bodies)
    fake.transport.assert_clean()


def test_a_new_chat_gets_an_id_from_the_time_printed_at_the_start(
    run: Run, fake: FakeOpenAI, store: SessionStore
) -> None:
    ran = run("chat", "--model", MODEL, typed="hi\n")
    (name,) = store.names()
    assert name.startswith("chat-") and f"session {name} (new)" in ran.out.splitlines()[0]
    assert f"llm-magics chat --session {name}" in ran.out


def test_leaving_before_asking_anything_saves_no_empty_session(
    run: Run, fake: FakeOpenAI, store: SessionStore
) -> None:
    ran = run("chat", "--model", MODEL, "--session", "idle", typed="\n/exit\n")
    assert ran.status == 0 and "was not saved" in ran.out and store.names() == []


def test_a_session_saved_from_python_goes_on_in_the_terminal_and_back(
    run: Run, fake: FakeOpenAI, store: SessionStore
) -> None:
    conv = Conversation("trip", model=MODEL, system="You plan trips.")
    conv.chat("Where to in May?")
    lm.session_store().save(conv)

    ran = run("chat", "--session", "trip", typed="And in June?\n")
    assert ran.status == 0 and "session trip (continued, 1 turn(s))" in ran.out
    sent = fake.bodies[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[1]["content"] == "Where to in May?" and sent[-1]["content"] == "And in June?"

    back = lm.session_store().open("trip")
    assert len(back) == 2 and back.system == "You plan trips."
    lm.session("trip").chat("And in July?")
    lm.session_store().save(lm.session("trip"))
    assert [m["role"] for m in fake.bodies[-1]["messages"]][-3:] == ["user", "assistant", "user"]
    text = run("export", "trip", "--format", "text").out
    assert text.index("Where to in May?") < text.index("And in June?") < text.index("July?")


def test_help_lists_every_command_and_exit_ends_the_chat_there(run: Run, fake: FakeOpenAI) -> None:
    ran = run("chat", "--model", MODEL, typed="/help\n/exit\nnever asked\n")
    for usage in COMMANDS:
        assert usage in ran.out
    assert fake.bodies == [] and "echo: never asked" not in ran.out


def test_quit_and_ctrl_d_leave_too(run: Run, fake: FakeOpenAI, store: SessionStore) -> None:
    assert run("chat", "--model", MODEL, "--session", "q", typed="one\n/quit\ntwo\n").status == 0
    assert len(store.load("q")) == 1
    assert run("chat", "--session", "q", typed="three").status == 0, "end of input: Ctrl-D"
    assert [t.answer for t in store.load("q").turns] == ["echo: one", "echo: three"]


def test_model_shows_the_model_and_switches_it_for_the_next_answers(
    run: Run, fake: FakeOpenAI, store: SessionStore
) -> None:
    typed = "/model\n/model openai:gpt-4o\nwhich?\n/model nope\n/model a b\nstill here\n"
    ran = run("chat", "--model", MODEL, "--session", "m", typed=typed)
    assert f"Model: {MODEL}." in ran.out and "Model: openai:gpt-4o from the next" in ran.out
    assert [b["model"] for b in fake.bodies] == ["gpt-4o", "gpt-4o"]
    assert "echo: still here" in ran.out, "a bad /model does not end the chat"
    errors = ran.error_lines
    assert len(errors) == 2 and errors[0].startswith("llm-magics: error: unknown model 'nope'")
    assert "/model takes one model id" in errors[1]
    assert store.load("m").model == "openai:gpt-4o"


def test_export_prints_or_writes_the_conversation_in_each_format(
    run: Run, fake: FakeOpenAI, tmp_path: Path
) -> None:
    out = tmp_path / "talk.json"
    typed = f"hi\n/export\n/export text\n/export json {out}\n/export {tmp_path / 'talk.md'}\n"
    ran = run("chat", "--model", MODEL, "--session", "x", typed=typed)
    assert "# Conversation `x`" in ran.out and "You: hi" in ran.out
    assert json.loads(out.read_text())["turns"][0]["assistant"] == "echo: hi"
    assert (tmp_path / "talk.md").read_text().startswith("# Conversation `x`")
    assert f"Wrote 1 turn(s) of x to {out}" in ran.out
    ran = run("chat", "--session", "x", typed="/export json a b\n/export /no/such/dir/f.md\n")
    assert len(ran.error_lines) == 2 and "folder /no/such/dir does not exist" in ran.err


def test_metrics_shows_calls_tokens_and_cost_of_the_session(run: Run, fake: FakeOpenAI) -> None:
    ran = run("chat", "--model", MODEL, typed="/metrics\none\ntwo\n/metrics\n")
    assert "No model calls yet." in ran.out
    (row,) = [line for line in ran.out.splitlines() if line.startswith("openai:gpt-4o-mini  ")]
    assert row.split()[:5] == ["openai:gpt-4o-mini", "2", "22", "14", "36"]


def test_summarize_prints_the_summary_and_keeps_it_as_the_sessions_memory(
    run: Run, fake: FakeOpenAI, store: SessionStore
) -> None:
    fake.reply = lambda body: "They said hi." if "memory" in str(body["messages"][0]) else "ok"
    ran = run("chat", "--model", MODEL, "--session", "sum", typed="/summarize\nhi\n/summarize\n")
    assert "nothing to summarise yet" in ran.err
    assert "They said hi." in ran.out
    assert store.load("sum").summary.text == "They said hi."


def test_a_double_slash_sends_the_text_and_an_unknown_command_is_one_error_line(
    run: Run, fake: FakeOpenAI
) -> None:
    ran = run("chat", "--model", MODEL, typed="//etc/hosts\n/bogus\n")
    assert fake.bodies[0]["messages"][-1]["content"] == "/etc/hosts"
    assert ran.error_lines == [
        "llm-magics: error: unknown command /bogus; /help lists them (//text sends /text)"
    ]


def test_ctrl_c_during_an_answer_stops_it_keeps_what_arrived_and_the_chat_goes_on(
    run: Run, fake: FakeOpenAI, store: SessionStore
) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    fake.reply = lambda body: words if last_user_text(body) == "count" else "ok"
    fake.delay = 0.05
    fake.on_chunk = lambda n: os.kill(os.getpid(), signal.SIGINT) if n == 3 else None
    ran = run("chat", "--model", MODEL, "--session", "c", typed="count\nnext\n")
    assert ran.status == 0 and "(stopped: the" in ran.out and "characters that arrived" in ran.out
    first, second = store.load("c").turns
    assert first.finish_reason == "interrupted" and first.answer is not None
    assert first.answer.startswith("w0 w1") and "w39" not in first.answer
    assert second.answer == "ok", "the chat went on after the interrupt"


def test_ctrl_c_at_the_prompt_says_how_to_leave_and_ctrl_d_saves(
    fake: FakeOpenAI, capsys: pytest.CaptureFixture[str], store: SessionStore
) -> None:
    keys: list[str | type[BaseException]] = [KeyboardInterrupt, "hello", EOFError]

    def read(prompt: str) -> str:
        key = keys.pop(0)
        if isinstance(key, str):
            return key
        raise key

    conv = Conversation("keys", model=MODEL)
    assert ChatLoop(store, conv, read=read).run() == 0
    out = capsys.readouterr().out
    assert "to leave, type /exit or press Ctrl-D" in out and "echo: hello" in out
    assert len(store.load("keys")) == 1


def test_system_temperature_and_max_tokens_go_with_every_question(
    run: Run, fake: FakeOpenAI, store: SessionStore
) -> None:
    argv = [
        "--model",
        MODEL,
        "--session",
        "opts",
        "-s",
        "Be terse.",
        "-t",
        "0",
        "--max-tokens",
        "9",
    ]
    run("chat", *argv, typed="one\ntwo\n")
    for body in fake.bodies:
        assert body["messages"][0] == {"role": "system", "content": "Be terse."}
        assert body["temperature"] == 0 and body["max_completion_tokens"] == 9
    assert store.load("opts").system == "Be terse."


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--model", "nope"], "llm-magics: error: unknown model 'nope'"),
        (["--model", "anthropic:claude-haiku-4-5"], "llm-magics: error: no API key for Anthropic"),
        (["--session", "../escape"], "llm-magics: error: cannot use '../escape' as a session name"),
    ],
)
def test_a_bad_model_missing_key_or_bad_id_fails_before_the_prompt_in_one_line(
    run: Run, store: SessionStore, argv: list[str], expected: str
) -> None:
    ran = run("chat", *argv, typed="never read\n")
    assert ran.status == 1 and ran.out == ""
    assert len(ran.error_lines) == 1 and ran.error_lines[0].startswith(expected)
    assert store.names() == []


def test_a_provider_error_is_one_line_and_the_chat_goes_on(run: Run, fake: FakeOpenAI) -> None:
    fake.status = 400
    fake.error = {"error": {"message": "bad request", "type": "invalid_request_error",
                            "param": None, "code": None}}  # fmt: skip
    ran = run("chat", "--model", MODEL, typed="one\ntwo\n")
    assert ran.status == 0 and len(ran.error_lines) == 2
    assert all(line.startswith("llm-magics: error: ") for line in ran.error_lines)
    assert "Traceback" not in ran.err


def test_no_key_is_ever_shown_not_even_one_an_answer_echoes(
    run: Run, fake: FakeOpenAI, store: SessionStore
) -> None:
    fake.reply = f"your key is {KEY} indeed"
    ran = run("chat", "--model", MODEL, "--session", "k", typed="what is my key?\n/export\n")
    assert KEY not in ran.out + ran.err and "your key is" in ran.out
    assert KEY not in store.path("k").read_text()
