"""``llm-magics chat --model local`` in a real terminal (tmux), driven as a person does: typing,
Enter, Ctrl-C, the arrow keys, Ctrl-D, and reading the screen. The answers come from the
embedded model, so these tests are marked ``model``.

Every wait is bounded and polls ``tmux capture-pane``; each test has its own tmux server
(``-L``), killed at the end whatever happens.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from llm_magics._chat.store import SessionStore

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(
        shutil.which("tmux") is None,
        reason="tmux is not installed (Debian package tmux; scripts/install.sh installs it)",
    ),
]

#: How long the embedded model may take for one short answer on a busy 2-core machine.
ANSWER_WAIT = 180.0


def llm_magics() -> list[str]:
    script = shutil.which("llm-magics")
    return [script] if script else [sys.executable, "-m", "llm_magics"]


class Terminal:
    """One program in a 120x40 tmux pane of a private tmux server."""

    def __init__(self) -> None:
        self.socket = f"llm-magics-test-{uuid.uuid4().hex[:12]}"

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, f"tmux {' '.join(args)}: {done.stderr}"
        return done.stdout

    def start(self, argv: list[str]) -> None:
        # The program runs under sh, which writes its exit status on the screen when it ends
        # (tmux may be slow to notice a pane's process ending); the pane stays after that.
        # sh traps Ctrl-C's SIGINT (its child gets the default back, as Python wants it).
        script = 'trap : INT; "$@"; echo "[exited with status $?]"'
        command = shlex.join(["sh", "-c", script, "sh", *argv])
        self.tmux("start-server", ";", "set-option", "-g", "remain-on-exit", "on", ";",
                  "new-session", "-d", "-s", "t", "-x", "120", "-y", "40", command)  # fmt: skip

    def screen(self) -> str:
        """Everything the pane shows and has scrolled past, wrapped lines joined."""
        return self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "t")

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.screen())
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{pattern!r} not on the screen after {timeout} s:\n" + self.screen()
                )
            time.sleep(0.1)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "t", "-l", text)
        self.tmux("send-keys", "-t", "t", "Enter")

    def keys(self, *names: str) -> None:
        self.tmux("send-keys", "-t", "t", *names)

    def prompt_count(self) -> int:
        return len(re.findall(r"(?m)^you> ", self.screen()))

    def wait_for_prompt(self, count: int, timeout: float = ANSWER_WAIT) -> None:
        """Until the ``count``-th prompt is on the screen (the app waits for a line)."""
        deadline = time.monotonic() + timeout
        while self.prompt_count() < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"prompt {count} never came:\n" + self.screen())
            time.sleep(0.1)

    def exit_status(self, timeout: float = 30.0) -> int:
        """The program's exit status, once it has ended."""
        return int(self.wait_for(r"\[exited with status (\d+)\]", timeout).group(1))

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal()
    try:
        yield term
    finally:
        term.close()


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*llm_magics(), *argv], capture_output=True, text=True, timeout=120, check=False
    )


def test_a_chat_on_local_asks_shows_metrics_exports_exits_and_is_then_listed_and_exported(
    terminal: Terminal,
) -> None:
    terminal.start([*llm_magics(), "chat", "--model", "local", "-t", "0", "--max-tokens", "40"])
    name = terminal.wait_for(r"session (chat-\d{8}-\d{6}) \(new\) · model local", 60).group(1)
    terminal.wait_for_prompt(1, 60)

    terminal.type("What is the capital of France?")
    terminal.wait_for(r"local:smollm2-135m · \d+ → \d+ tokens · \$0 · [\d.]+ s", ANSWER_WAIT)
    assert "Paris" in terminal.screen()
    assert "session: 1 turn(s)" in terminal.screen()

    terminal.wait_for_prompt(2)
    terminal.type("/metrics")
    terminal.wait_for(rf"Session {name}: 1 turn\(s\)")
    terminal.wait_for(r"(?m)^local:smollm2-135m +1 +\d+ +\d+ +\d+ +\$0")

    terminal.wait_for_prompt(3)
    terminal.type("/export")
    terminal.wait_for(rf"# Conversation `{name}`[\s\S]*## 1\. You[\s\S]*capital of France")

    terminal.wait_for_prompt(4)
    terminal.type("/exit")
    terminal.wait_for(rf"Saved session {name} \(1 turn\(s\)\)")
    assert terminal.exit_status() == 0

    listed = cli("sessions")
    assert listed.returncode == 0, listed.stderr
    (row,) = [line.split() for line in listed.stdout.splitlines() if line.startswith(name)]
    assert row[1:3] == ["local", "1"]
    exported = cli("export", name)
    assert exported.returncode == 0, exported.stderr
    (turn,) = json.loads(exported.stdout)["turns"]
    assert turn["user"]["content"] == "What is the capital of France?"
    assert "Paris" in turn["assistant"] and turn["model"] == "local:smollm2-135m"


def test_ctrl_c_stops_an_answer_arrows_recall_history_and_ctrl_d_saves_for_the_next_run(
    terminal: Terminal,
) -> None:
    question = "Write a long story about a dragon who learns to bake bread."
    argv = [*llm_magics(), "chat", "--model", "local", "--session", "keys", "--max-tokens", "400"]
    terminal.start(argv)
    terminal.wait_for_prompt(1, 60)
    terminal.type(question)
    terminal.wait_for(re.escape(question) + r"\n.*\w+", ANSWER_WAIT)  # the answer has begun
    terminal.keys("C-c")
    terminal.wait_for(r"\(stopped: the \d+ characters that arrived are kept\)")
    terminal.wait_for_prompt(2)

    terminal.keys("C-c")  # at the prompt: it stays
    terminal.wait_for(r"to leave, type /exit or press Ctrl-D")
    terminal.wait_for_prompt(3)
    terminal.keys("Up")  # readline brings the last question back
    terminal.wait_for(r"(?m)^you> " + re.escape(question) + r"\s*\Z")
    terminal.keys("C-u", "C-d")
    terminal.wait_for(r"Saved session keys \(1 turn\(s\)\)")
    assert terminal.exit_status() == 0

    (turn,) = SessionStore().load("keys").turns
    assert turn.finish_reason == "interrupted" and turn.answer

    again = Terminal()
    try:
        again.start([*llm_magics(), "chat", "--session", "keys"])
        again.wait_for(r"session keys \(continued, 1 turn\(s\)\) · model local", 60)
        again.wait_for_prompt(1, 60)
        again.type("/quit")
        assert again.exit_status() == 0
    finally:
        again.close()
