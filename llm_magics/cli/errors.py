"""How the terminal app reports a failure: one line on stderr, ``llm-magics: error: ...``,
with every key the package knows masked (the package's own errors are masked already; an
OS error's text is masked here too). Exit status 2 for a command line that does not parse,
1 for everything else.

Thread safety: writes to stderr only.
"""

from __future__ import annotations

import sys

from .._core.secrets import scrub

__all__ = ["FAILED", "USAGE", "UsageError", "one_line", "say_error", "say_warning"]

PROG = "llm-magics"
#: Exit statuses: a command line that does not parse, and any other failure.
USAGE = 2
FAILED = 1


class UsageError(Exception):
    """The command line is wrong: the message says what, and which ``--help`` tells more."""


def one_line(text: object) -> str:
    """``text`` on one line, keys masked (a multi-line message has its lines joined)."""
    return " ".join(scrub(str(text)).split())


def say_error(error: object) -> None:
    print(f"{PROG}: error: {one_line(error)}", file=sys.stderr, flush=True)


def say_warning(message: object) -> None:
    print(f"{PROG}: warning: {one_line(message)}", file=sys.stderr, flush=True)
