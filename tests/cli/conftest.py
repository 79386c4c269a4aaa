"""Running ``llm-magics`` in-process as a person would from a shell: argv in, exit status,
stdout and stderr out, questions typed on stdin, sessions in the test's own store (the root
conftest points LLM_MAGICS_SESSIONS_DIR at a temporary folder)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from llm_magics._chat.store import SessionStore
from llm_magics.cli import main


@dataclass
class Ran:
    status: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


Run = Callable[..., Ran]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """``run("sessions")`` or ``run("chat", "--model", M, typed="hi\\n/exit\\n")``."""

    def call(*argv: str, typed: str = "") -> Ran:
        capsys.readouterr()
        monkeypatch.setattr("sys.stdin", io.StringIO(typed))
        status = main(list(argv))
        captured = capsys.readouterr()
        return Ran(status, captured.out, captured.err)

    return call


@pytest.fixture
def store() -> SessionStore:
    return SessionStore()
