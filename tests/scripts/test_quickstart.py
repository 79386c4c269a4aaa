"""What a newcomer meets (case 18 of the hardening issue): the README's first command runs
the quickstart notebook in a real kernel and prints no warning, and nothing of the package
leaves a ResourceWarning behind at exit."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

needs_local = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="the [local] extra is not installed"
)


@pytest.mark.model
@needs_local
def test_the_quickstart_runs_on_the_local_model_and_prints_no_warning() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    assert "Paris" in run.stdout, "the first cell answers the capital of France"
    assert run.stderr.strip() == "", f"a newcomer sees noise: {run.stderr}"
    assert "\\$" not in run.stdout, "the terminal reads plain text, not escaped Markdown"


@needs_local
def test_importing_the_local_model_stack_leaves_no_unclosed_file_at_exit() -> None:
    code = "import llama_cpp.llama_grammar\nimport llm_magics._local.model\n"
    run = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-X", "dev", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "ResourceWarning" not in run.stderr, run.stderr
