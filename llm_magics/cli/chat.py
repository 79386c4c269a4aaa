"""``llm-magics chat``: a conversation at the terminal, saved in the session store.

Each line is a question; the answer streams in as Markdown, then a line tells its model,
tokens, cost and latency, and the session's totals. Lines starting with ``/`` are commands
(``/help``); ``//text`` sends ``/text`` as a question. The session is saved after every turn
and when leaving, so ``llm-magics chat --session ID``, ``lm.session_store().load(ID)`` or a
notebook go on from there.

Keys: Ctrl-C during an answer stops it (what arrived is kept as the turn, finish reason
``interrupted``); at the prompt it only says how to leave. Ctrl-D, ``/exit`` or ``/quit``
save and leave. Input history (arrow keys, Ctrl-R) is kept by GNU readline in
``.chat_history`` of the sessions folder, when the input is a terminal.

Everything here calls the Python API (Conversation, SessionStore, the registry); this module
holds the loop and the words only. Main thread only.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._chat.metrics import session_metrics
from .._chat.store import SessionStore
from .._client.registry import current_registry
from .._core.errors import LLMError
from . import report
from .errors import say_error
from .render import make_console, print_markdown, stream_markdown

if TYPE_CHECKING:
    from .._chat.memory import Conversation

__all__ = ["COMMANDS", "ChatLoop", "input_history"]

PROMPT = "you> "
HISTORY_FILE = ".chat_history"
HISTORY_LENGTH = 1000
EXPORT_FORMATS = ("md", "json", "text")

#: The commands of the chat, as /help lists them.
COMMANDS = {
    "/help": "this list",
    "/model [ID]": "show the model, or answer with ID from now on (any provider:model)",
    "/export [md|json|text] [FILE]": "the conversation, printed or written to FILE",
    "/metrics": "calls, tokens, cost and latency of this session",
    "/summarize": "a summary of the session by its model (kept as its memory)",
    "/exit, /quit": "save and leave (Ctrl-D too)",
}


class ChatLoop:
    """One terminal chat over ``conv``, saved in ``store`` (see the module docstring).
    ``options`` go with every question (temperature=, max_tokens=)."""

    def __init__(
        self,
        store: SessionStore,
        conv: Conversation,
        *,
        options: dict[str, Any] | None = None,
        read: Callable[[str], str] = input,
    ) -> None:
        self.store = store
        self.conv = conv
        self.options = dict(options or {})
        self.read = read
        self.out = make_console()
        self.saved_turns = len(conv) if conv.name in store else -1
        self._commands: dict[str, Callable[[list[str]], bool]] = {
            "/help": self.cmd_help,
            "/model": self.cmd_model,
            "/export": self.cmd_export,
            "/metrics": self.cmd_metrics,
            "/summarize": self.cmd_summarize,
            "/summarise": self.cmd_summarize,
            "/exit": self.cmd_exit,
            "/quit": self.cmd_exit,
        }

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        """Read and answer until Ctrl-D or /exit; save; the exit status (0)."""
        self.banner()
        with input_history(self.store.folder / HISTORY_FILE, list(self._commands)):
            while True:
                try:
                    line = self.read(PROMPT).strip()
                except EOFError:
                    print()
                    break
                except KeyboardInterrupt:
                    print("\n(Ctrl-C stops an answer; to leave, type /exit or press Ctrl-D)")
                    continue
                if line.startswith("/") and not line.startswith("//"):
                    if not self.command(line):
                        break
                elif line:
                    self.ask(line.removeprefix("/"))
        self.leave()
        return 0

    def banner(self) -> None:
        conv = self.conv
        state = f"continued, {len(conv)} turn(s)" if self.saved_turns >= 0 else "new"
        self.note(f"llm-magics chat · session {conv.name} ({state}) · model {self.model_label()}")
        self.note("Ask away. /help lists commands; Ctrl-C stops an answer; Ctrl-D or /exit leaves.")

    def ask(self, prompt: str) -> None:
        """Stream the answer to ``prompt``, then its usage line; save the turn."""
        stream, before = None, len(self.conv)
        try:
            stream = self.conv.stream(prompt, **self.options)
            stream_markdown(self.out, stream)
        except KeyboardInterrupt:
            if stream is not None:
                stream.close()
            kept = len(stream.text) if stream is not None else 0
            self.note(
                f"(stopped: the {kept} characters that arrived are kept)"
                if kept
                else "(stopped before any text arrived: nothing was kept)"
            )
        except LLMError as exc:
            say_error(exc)
        if len(self.conv) > before:  # a turn was recorded, whole or as far as it got
            self.save()
            response = stream.response if stream is not None else None
            self.note(report.turn_line(response, self.conv.usage, len(self.conv)))

    def command(self, line: str) -> bool:
        """Run a /command; False when the chat should end."""
        name, *words = line.split()
        handler = self._commands.get(name.lower())
        if handler is None:
            say_error(f"unknown command {name}; /help lists them (//text sends /text)")
            return True
        try:
            return handler(words)
        except LLMError as exc:
            say_error(exc)
        except KeyboardInterrupt:
            self.note("(stopped)")
        return True

    def leave(self) -> None:
        if self.save():
            self.note(
                f"Saved session {self.conv.name} ({len(self.conv)} turn(s)) in "
                f"{self.store.folder}. Go on with: llm-magics chat --session {self.conv.name}"
            )
        elif not self.conv.turns:
            self.note(f"No turns: session {self.conv.name} was not saved.")

    def save(self) -> bool:
        """Save the session (not a new one that is still empty); False when nothing was
        written."""
        if not self.conv.turns and self.saved_turns < 0:
            return False
        try:
            self.store.save(self.conv)
        except LLMError as exc:
            say_error(exc)
            return False
        self.saved_turns = len(self.conv)
        return True

    # --- commands ------------------------------------------------------------------------

    def cmd_help(self, words: list[str]) -> bool:
        width = max(map(len, COMMANDS))
        print("\n".join(f"  {usage.ljust(width)}  {what}" for usage, what in COMMANDS.items()))
        print("  Anything else is a question; //text sends /text.")
        return True

    def cmd_model(self, words: list[str]) -> bool:
        if len(words) > 1:
            say_error("/model takes one model id, e.g. /model local or /model openai:gpt-4o-mini")
        elif words:
            self.conv.client_for(words[0])  # an unknown model or a missing key fails here
            self.conv.configure(model=words[0])
            self.save()
            print(f"Model: {self.model_label()} from the next question on.")
        else:
            print(f"Model: {self.model_label()}. /model ID switches (the history goes along).")
        return True

    def cmd_export(self, words: list[str]) -> bool:
        fmt = words.pop(0).lower() if words and words[0].lower() in EXPORT_FORMATS else None
        if len(words) > 1:
            say_error(
                "/export takes a format (md, json or text) and a file, e.g. /export json a.json"
            )
            return True
        if words:
            self.conv.export(words[0], format=fmt)  # type: ignore[arg-type]
            print(f"Wrote {len(self.conv)} turn(s) of {self.conv.name} to {words[0]}")
        else:
            print(self.conv.export(format=fmt or "md"))  # type: ignore[arg-type]
        return True

    def cmd_metrics(self, words: list[str]) -> bool:
        print(report.metrics_text(session_metrics(self.conv)))
        return True

    def cmd_summarize(self, words: list[str]) -> bool:
        if not self.conv.turns:
            say_error("nothing to summarise yet: ask something first")
            return True
        self.note(f"Summarising {len(self.conv)} turn(s) with {self.model_label()}...")
        print_markdown(self.out, self.conv.summarize())
        self.save()
        return True

    def cmd_exit(self, words: list[str]) -> bool:
        return False

    # --- helpers -------------------------------------------------------------------------

    def model_label(self) -> str:
        """The model as given, and what it stands for when that differs."""
        given = self.conv.model or current_registry().default_model()
        try:
            resolved = str(current_registry().resolve(given))
        except LLMError:
            return given
        return given if resolved == given else f"{given} = {resolved}"

    def note(self, text: str) -> None:
        """A line of the app's own (dim on a terminal), never read as markup."""
        self.out.print(text, style="dim", soft_wrap=True)


@contextlib.contextmanager
def input_history(path: Path, words: list[str]) -> Iterator[None]:
    """GNU readline's line editing with the history in ``path`` (read now, written back at
    the end) and Tab completing ``words``, when the input is a terminal; else nothing."""
    try:
        if not sys.stdin.isatty():
            raise ImportError
        import readline
    except (ImportError, AttributeError, ValueError):
        yield
        return
    readline.set_history_length(HISTORY_LENGTH)
    with contextlib.suppress(OSError):
        readline.read_history_file(path)

    def complete(text: str, state: int) -> str | None:
        found = [w for w in words if w.startswith(text)] if text.startswith("/") else []
        return found[state] if state < len(found) else None

    readline.set_completer(complete)
    readline.set_completer_delims(" \t\n")
    if "libedit" in (readline.__doc__ or ""):  # macOS's Python: another binding syntax
        readline.parse_and_bind("bind ^I rl_complete")
    else:
        readline.parse_and_bind("tab: complete")
    try:
        yield
    finally:
        readline.set_completer(None)
        with contextlib.suppress(OSError):
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            readline.write_history_file(path)
