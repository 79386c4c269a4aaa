"""%llm budget: set, show and lift the kernel's spending limit; a wrong amount is a usage error
saying what it takes."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

import llm_magics as lm
from tests.magics_helpers import ip

__all__ = ["ip"]  # fixtures


def line(shell: Any, text: str) -> str:
    with capture_output() as captured:
        shell.run_line_magic("llm", text)
    return captured.stdout


def test_budget_sets_shows_and_lifts_the_kernels_limit(ip: Any) -> None:
    assert "Budget $2.50: spent $0, $2.50 left." in line(ip, "budget $2.50")
    assert lm.budget().limit == 2.5
    assert "Budget $2.50" in line(ip, "budget")
    assert "No budget" in line(ip, "budget off")
    assert lm.budget().limit is None


@pytest.mark.parametrize("bad", ["five", "-3", "nan"])
def test_budget_of_no_amount_is_a_usage_error(ip: Any, bad: str) -> None:
    with pytest.raises(UsageError, match=r"%llm budget takes an amount in US dollars"):
        line(ip, f"budget {bad}")


def test_budget_is_listed_in_the_help(ip: Any) -> None:
    assert "budget [USD|off]" in line(ip, "help")
