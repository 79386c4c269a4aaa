"""The ``llm-magics`` entry point: a console script and ``python -m llm_magics``, ``--help`` on
every command, and every failure one line on stderr with exit status 2 (the command line) or
1 (anything else), never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from llm_magics._chat.memory import Conversation
from llm_magics._chat.store import SessionStore
from llm_magics._core.types import MediaPart
from llm_magics.cli import commands
from tests.cli.conftest import Run

COMMANDS = ("chat", "models", "sessions", "export", "metrics", "summarize")


def test_the_help_lists_every_command(run: Run) -> None:
    ran = run("--help")
    assert ran.status == 0 and ran.out.startswith("usage: llm-magics")
    for name in COMMANDS:
        assert f"    {name} " in ran.out, name


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_its_help(run: Run, name: str) -> None:
    ran = run(name, "--help")
    assert ran.status == 0 and ran.out.startswith(f"usage: llm-magics {name}")
    assert ran.err == ""


def test_the_chat_help_names_its_options_including_the_seeds_session_id(run: Run) -> None:
    out = run("chat", "--help").out
    for option in ("--model", "--session ID, --session-id ID", "--system", "--max-tokens"):
        assert option in out, option


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        ([], "choose a command: chat, models, sessions, export, metrics or summarize"),
        (["fly"], "argument COMMAND: invalid choice: 'fly'"),
        (["export"], "the following arguments are required: SESSION_ID"),
        (["export", "x", "--format", "yaml"], "argument --format: invalid choice: 'yaml'"),
        (["chat", "--max-tokens", "0"], "expected a number of at least 1; got 0"),
        (["chat", "--temperature", "warm"], "argument --temperature/-t: invalid float value"),
        (["sessions", "--all"], "unrecognized arguments: --all"),
    ],
)
def test_a_wrong_command_line_is_one_line_and_exit_status_2(
    run: Run, argv: list[str], said: str
) -> None:
    ran = run(*argv)
    assert ran.status == 2 and ran.out == ""
    (line,) = ran.error_lines
    assert line.startswith("llm-magics: error: ") and said in line and "--help" in line


def test_ctrl_c_in_a_command_is_one_line_and_exit_status_130(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "cmd_sessions", interrupted)
    ran = run("sessions")
    assert ran.status == 130 and ran.error_lines == ["llm-magics: error: interrupted"]


def test_an_os_error_is_one_line_with_exit_status_1(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_disk(args: object) -> int:
        raise PermissionError(13, "Permission denied", "/srv/sessions")

    monkeypatch.setattr(commands, "cmd_sessions", no_disk)
    ran = run("sessions")
    assert ran.status == 1
    assert ran.error_lines == ["llm-magics: error: [Errno 13] Permission denied: '/srv/sessions'"]


@pytest.mark.filterwarnings("default")
def test_a_warning_is_one_line_too(run: Run, store: SessionStore) -> None:
    conv = Conversation("pics")
    conv.add_user(["look", MediaPart("image", "image/png", data=b"\x89PNG\r\n\x1a\n" * 4)])
    conv.add_assistant("a picture")
    path = store.save(conv)
    shutil.rmtree(path.with_suffix(".media"))
    ran = run("export", "pics", "--format", "text")
    assert ran.status == 0 and "You: look" in ran.out
    (line,) = ran.error_lines
    assert line.startswith("llm-magics: warning: 1 media part(s) of") and "placeholders" in line


def test_python_dash_m_runs_the_app() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llm_magics", "sessions", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.startswith("usage: llm-magics sessions")


def test_the_console_script_is_installed_and_fails_in_one_line() -> None:
    script = shutil.which("llm-magics")
    assert script is not None, "reinstall the package (pip install -e .) for its console script"
    done = subprocess.run([script, "metrics", "ghost"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("llm-magics: error: no saved session 'ghost'")
