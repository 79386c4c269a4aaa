"""The ``llm-magics`` command line: one subcommand per command, ``--help`` on each.

    llm-magics chat [--model M] [--session ID]     talk; the session is saved as you go
    llm-magics models [PROVIDER]                   providers, key status, models
    llm-magics sessions                            saved sessions
    llm-magics export ID [--format json|text|md] [--output F]
    llm-magics metrics ID                          calls, tokens, cost, latency
    llm-magics summarize ID [--output F]

Sessions live in ``LLM_MAGICS_SESSIONS_DIR`` (default: ``sessions`` in the user data
directory), the same store as ``lm.session_store()``. A failure is one line on stderr
(``llm-magics: error: ...``, never a traceback or a key) and exit status 2 for a command line
that does not parse, 1 for anything else; Ctrl-C outside a chat exits with 130.

Main thread only.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import NoReturn, TextIO

from .._core.errors import LLMError
from . import commands
from .errors import FAILED, PROG, USAGE, UsageError, say_error, say_warning

__all__ = ["build_parser", "main", "run"]

INTERRUPTED = 130
Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse, with a wrong command line raised as one line instead of usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


class _Help(argparse.HelpFormatter):
    """Commands and options with their help on the same line."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        # argparse measures the commands one indent short, so the longest one would wrap.
        names = [len(a.dest) for a in getattr(action, "_get_subactions", list)()]
        if names:
            width = max(names) + self._current_indent + 2 * self._indent_increment
            self._action_max_length = max(self._action_max_length, width)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each subparser carries its ``handler``."""
    parser = _Parser(
        prog=PROG,
        formatter_class=_Help,
        description="Chat with any model from the terminal, over the sessions a notebook "
        "saves with lm.session_store() (LLM_MAGICS_SESSIONS_DIR).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    _add_chat(sub)
    models = _add(sub, "models", commands.cmd_models, "providers, key status and models")
    models.add_argument(
        "provider", nargs="?", metavar="PROVIDER", help="one provider (or a model id of it)"
    )
    models.add_argument(
        "--offline", action="store_true", help="do not ask the provider's API for its list"
    )
    _add(sub, "sessions", commands.cmd_sessions, "saved sessions: model, turns, tokens, cost")
    export = _add(sub, "export", commands.cmd_export, "a saved session as JSON, text or Markdown")
    _session_id(export)
    export.add_argument(
        "--format",
        choices=["json", "text", "md"],
        help="default: json (or from --output's suffix: .json, .txt, .md)",
    )
    export.add_argument("--output", "-o", metavar="FILE", help="write it there, not to stdout")
    metrics = _add(sub, "metrics", commands.cmd_metrics, "calls, tokens, cost and latency")
    _session_id(metrics)
    summarize = _add(sub, "summarize", commands.cmd_summarize, "a summary written by a model")
    _session_id(summarize)
    summarize.add_argument("--output", "-o", metavar="FILE", help="write it there, not to stdout")
    summarize.add_argument(
        "--model", metavar="MODEL", help="the model that writes it (default: the session's)"
    )
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llm-magics")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _add(
    sub: argparse._SubParsersAction[_Parser],
    name: str,
    handler: Handler,
    summary: str,
) -> argparse.ArgumentParser:
    command = sub.add_parser(
        name, help=summary, description=summary[0].upper() + summary[1:], formatter_class=_Help
    )
    command.set_defaults(handler=handler)
    return command


def _add_chat(sub: argparse._SubParsersAction[_Parser]) -> None:
    chat = _add(sub, "chat", commands.cmd_chat, "talk with a model; the session is saved as you go")
    chat.add_argument(
        "--model",
        "-m",
        metavar="MODEL",
        help="provider:model, an alias or `local` (default: the session's, else the default model)",
    )
    chat.add_argument(
        "--session",
        "--session-id",
        dest="session",
        metavar="ID",
        help="continue this saved session, or start it (default: a new id from the time)",
    )
    chat.add_argument("--system", "-s", metavar="TEXT", help="the system prompt of the session")
    chat.add_argument(
        "--temperature", "-t", type=float, metavar="T", help="sampling temperature of each answer"
    )
    chat.add_argument(
        "--max-tokens", type=_positive, metavar="N", help="the longest answer, in tokens"
    )


def _session_id(command: argparse.ArgumentParser) -> None:
    command.add_argument("session_id", metavar="SESSION_ID", help="a saved session (see sessions)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1; got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``llm-magics`` with ``argv`` (default: the process's); the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        say_error(exc)
        return USAGE
    except SystemExit as exc:  # --help and --version end here
        return exc.code if isinstance(exc.code, int) else 0
    if args.command is None:
        say_error(
            "choose a command: chat, models, sessions, export, metrics or summarize "
            f"(see `{PROG} --help`)"
        )
        return USAGE
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(args.handler, args)


def _run(handler: Handler, args: argparse.Namespace) -> int:
    try:
        return handler(args)
    except LLMError as exc:
        say_error(exc)
    except OSError as exc:  # a file that cannot be written, a closed pipe
        if isinstance(exc, BrokenPipeError):
            _quiet_stdout()
        else:
            say_error(exc)
    except KeyboardInterrupt:
        say_error("interrupted")
        return INTERRUPTED
    return FAILED


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    say_warning(message)


def _quiet_stdout() -> None:
    """After the reader of a pipe left (``llm-magics export X | head``): no second error
    when Python flushes stdout at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def run() -> NoReturn:
    """The console script ``llm-magics``."""
    sys.exit(main())
