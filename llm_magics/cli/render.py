"""Answers on the terminal: Markdown rendered by rich as the text streams in.

A live region redrawn in place cannot be taller than the screen (rich then repeats the part
that scrolled away), so only the block still being written is live: each time a blank line
closes a paragraph, list or code block, the finished blocks are printed once, for good, and
the live region starts over with what follows. Any API key the package knows is masked in
what is shown, as in exports.

Only this package imports rich, and only when the terminal app runs, so ``import
llm_magics`` stays light. Thread safety: one console per run of the app, used by its thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._chat.export import redact_secrets

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.segment import Segment

__all__ = ["make_console", "print_markdown", "settled_length", "stream_markdown"]

#: Redraws per second of the block being written.
REFRESH = 8
_FENCES = ("```", "~~~")


def make_console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr): colours only on a terminal, no markup read from the
    text (answers are printed as they are), no emoji codes."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, emoji=False, markup=False)


def print_markdown(console: Console, text: str) -> None:
    """``text`` rendered as Markdown (keys masked)."""
    console.print(_markdown(console, text))


def _markdown(console: Console, text: str, *, gap: bool = False) -> RenderableType:
    """Markdown rendered to lines now, without the blank lines rich puts around some blocks
    (a list starts with one), and with one blank line before it when ``gap``: blocks printed
    one by one then read as one document."""
    from rich.markdown import Markdown
    from rich.segment import Segment, Segments

    lines = console.render_lines(Markdown(redact_secrets(text)), pad=False)
    blank = [
        not any(s.text.strip() or (s.style and s.style.bgcolor) for s in line) for line in lines
    ]
    first = blank.index(False) if False in blank else len(lines)
    last = len(blank) - blank[::-1].index(False) if False in blank else first
    kept = [_trimmed(line) for line in lines[first:last]]
    if gap and kept:
        kept.insert(0, [])
    return Segments(segment for line in kept for segment in (*line, Segment.line()))


def _trimmed(line: list[Segment]) -> list[Segment]:
    """A rendered line without the spaces rich pads it with (a coloured background stays)."""
    from rich.segment import Segment

    line = list(line)
    while line and not (line[-1].style and line[-1].style.bgcolor):
        text = line[-1].text.rstrip(" ")
        if text:
            line[-1] = Segment(text, line[-1].style, line[-1].control)
            break
        line.pop()
    return line


def settled_length(text: str) -> int:
    """How much of ``text`` is finished Markdown blocks: up to the last blank line outside a
    code fence that is followed by a line starting a new block (not an indented one, which
    may continue a list item)."""
    settled = offset = 0
    fenced = after_blank = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if after_blank and stripped and not line[0].isspace():
            settled = offset  # the blank line before this one ended a block
        after_blank = False
        offset += len(line)
        if stripped.startswith(_FENCES):
            fenced = not fenced
        elif not stripped and not fenced and line.endswith("\n"):
            after_blank = True
    return settled


def stream_markdown(console: Console, pieces: Iterable[str]) -> str:
    """Show ``pieces`` as Markdown while they arrive; returns the whole text. An exception
    from ``pieces`` (Ctrl-C among them) leaves what arrived on the screen, then goes on."""
    from rich.live import Live

    text, shown = "", 0
    with Live(
        console=console,
        refresh_per_second=REFRESH,
        vertical_overflow="visible",
        redirect_stdout=False,
        redirect_stderr=False,
    ) as live:
        try:
            for piece in pieces:
                text += piece
                done = settled_length(text)
                if done > shown:
                    live.console.print(_markdown(console, text[shown:done], gap=shown > 0))
                    shown = done
                live.update(_markdown(console, text[shown:], gap=shown > 0))
        finally:
            live.update(_markdown(console, text[shown:], gap=shown > 0), refresh=True)
    if not console.is_terminal:
        console.line()  # a terminal's live region ends its own line
    return text
