"""One way to show money, sizes, durations and tables (case 17 of the hardening issue:
JupyterLab reads `$0 | $0` in a Markdown table as a formula)."""

from __future__ import annotations

import pytest

from llm_magics._core.fmt import (
    duration,
    markdown_table,
    moment,
    money,
    size,
    text_table,
    total_cost,
)


@pytest.mark.parametrize(
    ("usd", "shown"),
    [
        (0, "$0"),
        (None, "unknown"),
        (0.00123, "$0.00123"),
        (0.0012, "$0.0012"),
        (0.000001234, "$0.000001234"),
        (0.5, "$0.50"),
        (0.1234, "$0.1234"),
        (1, "$1.00"),
        (1234.567, "$1,234.57"),
        (-0.5, "-$0.50"),
        (3e-11, "$<0.000000001"),
    ],
)
def test_money_is_shown_one_way_and_a_small_cost_never_reads_as_zero(
    usd: float | None, shown: str
) -> None:
    assert money(usd) == shown


@pytest.mark.parametrize(
    ("count", "shown"),
    [(512, "512 B"), (1536, "1.5 KiB"), (3 * 2**20, "3.0 MiB"), (2**30, "1.0 GiB")],
)
def test_sizes_are_binary_units_with_their_names(count: int, shown: str) -> None:
    assert size(count) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.42, "0.4 s"), (42, "42 s"), (185, "3 min 5 s"), (120, "2 min"), (7500, "2 h 5 min"),
     (9.96, "10 s"), (119.6, "2 min"), (None, "?"), (float("inf"), "?")],
)  # fmt: skip
def test_durations_read_as_a_person_says_them(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown


def test_a_markdown_table_escapes_dollars_and_pipes_so_no_formula_swallows_a_column() -> None:
    table = markdown_table(["model", "cost", "saved"], [["a|b", "$0", "$0"]])
    assert table.splitlines()[2] == "| a\\|b | \\$0 | \\$0 |"
    assert "$0 |" not in table.replace("\\$0 |", "")


def test_a_text_table_aligns_columns_and_numbers_to_the_right() -> None:
    assert text_table(["name", "n"], [["a", 5], ["bbb", 12]], numbers=True).splitlines() == [
        "name   n",
        "----  --",
        "a      5",
        "bbb   12",
    ]


@pytest.mark.parametrize(
    ("usd", "unpriced", "calls", "shown"),
    [(0.0123, 0, 3, "$0.0123"), (0.0123, 1, 3, "$0.0123+?"), (0.0, 3, 3, "unknown"),
     (0.0, 0, 0, "$0"), (2.5, 2, None, "$2.50+?")],
)  # fmt: skip
def test_a_total_cost_says_when_some_calls_had_no_known_price(
    usd: float, unpriced: int, calls: int | None, shown: str
) -> None:
    assert total_cost(usd, unpriced, calls) == shown


def test_a_moment_reads_as_local_date_and_minute_or_a_dash_when_unknown() -> None:
    import time

    stamp = time.mktime((2025, 1, 31, 14, 5, 59, 0, 0, -1))
    assert moment(stamp) == "2025-01-31 14:05"
    assert moment(None) == moment(0.0) == moment(float("nan")) == "-"
