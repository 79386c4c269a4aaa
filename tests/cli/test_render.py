"""Answers rendered as Markdown while they stream: finished blocks are printed once, only the
block being written is redrawn, and keys are masked in what is shown."""

from __future__ import annotations

import io

import pytest

from llm_magics.cli.render import make_console, settled_length, stream_markdown
from tests.magics_helpers import KEY


@pytest.mark.parametrize(
    ("text", "settled"),
    [
        ("One paragraph so far", ""),
        ("First.\n\nSecond", "First.\n\n"),
        ("First.\n\n", ""),
        ("# Title\n\nText.\n\n- a\n- b\n\nMore", "# Title\n\nText.\n\n- a\n- b\n\n"),
        ("```\ncode\n\nstill code\n", ""),
        ("```\ncode\n\nstill code\n```\n\nAfter", "```\ncode\n\nstill code\n```\n\n"),
        ("1. item\n\n   continued", ""),
        ("1. item\n\n   continued\n\n2. next", "1. item\n\n   continued\n\n"),
    ],
)
def test_only_blocks_a_later_block_has_closed_are_settled(text: str, settled: str) -> None:
    assert text[: settled_length(text)] == settled


def render(pieces: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    console = make_console()
    text = stream_markdown(console, iter(pieces))
    return text, out.getvalue()


def test_a_streamed_answer_is_shown_as_markdown_and_returned_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pieces = [
        "# Fruit\n\nSome **",
        "ripe** ones:\n\n",
        "- apple\n- pear\n\n",
        "```py\nx = [1]\n```",
    ]
    text, shown = render(pieces, monkeypatch)
    assert text == "".join(pieces)
    lines = [line.rstrip() for line in shown.splitlines()]
    assert "Fruit" in lines[0] and "#" not in shown
    assert "Some ripe ones:" in lines and "**" not in shown
    assert "• apple" in shown and "• pear" in shown
    assert any(line.strip() == "x = [1]" for line in lines) and "```" not in shown
    assert shown.count("apple") == 1, "a settled block is printed once"


def test_a_key_in_an_answer_is_masked_on_the_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    text, shown = render([f"The key is {KEY}.\n\n", f"Again: {KEY}"], monkeypatch)
    assert KEY in text, "the text itself is what the model said"
    assert KEY not in shown and shown.count("...cdef") == 2


def test_an_interrupted_stream_leaves_what_arrived_on_the_screen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def pieces() -> object:
        yield "Half an "
        yield "answer"
        raise KeyboardInterrupt

    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    with pytest.raises(KeyboardInterrupt):
        stream_markdown(make_console(), pieces())  # type: ignore[arg-type]
    assert "Half an answer" in out.getvalue()
