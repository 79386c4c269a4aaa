"""The commands of ``llm-magics``: each reads its arguments, calls the Python API (the session
store, Conversation, the registry and the model profiles) and prints a report of
:mod:`llm_magics.cli.report`. A failure is raised as the package's error; the entry point
(:mod:`llm_magics.cli.app`) turns it into one line and an exit status.

Main thread only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .._chat.export import write_export
from .._chat.memory import Conversation
from .._chat.metrics import session_metrics
from .._chat.store import SessionStore, check_name
from .._client.pricing import known_profiles, profile_for
from .._client.registry import current_registry
from .._core.errors import ConfigError
from . import report
from .chat import ChatLoop
from .errors import say_warning

__all__ = [
    "cmd_chat",
    "cmd_export",
    "cmd_metrics",
    "cmd_models",
    "cmd_sessions",
    "cmd_summarize",
]


def cmd_chat(args: argparse.Namespace) -> int:
    """Continue the saved session ``--session`` (or start it, or a new one), then chat."""
    store = SessionStore()
    name = check_name(args.session) if args.session else store.new_name()
    conv = store.load(name) if name in store else Conversation(name)
    settings = {"model": args.model, "system": args.system}
    conv.configure(**{key: value for key, value in settings.items() if value})
    if not conv.model:
        conv.configure(model=current_registry().default_model())
    conv.client_for(None)  # an unknown model or a missing key: said now, not at the prompt
    options = {"temperature": args.temperature, "max_tokens": args.max_tokens}
    return ChatLoop(
        store, conv, options={key: value for key, value in options.items() if value is not None}
    ).run()


def cmd_models(args: argparse.Namespace) -> int:
    """Providers with their key status and known models; one provider's, with prices and
    (key permitting) the list its API gives."""
    reg = current_registry()
    rows = reg.providers()
    if not args.provider:
        names = [row["provider"] for row in rows]
        known = {name: known_profiles(name) for name in names}
        every = {name: profile_for(name, "*") for name in names}
        print(report.providers_text(rows, known, every))
        return 0
    name = reg.provider_of(args.provider)
    row = next(r for r in rows if r["provider"] == name)
    print(report.provider_text(row, known_profiles(name), profile_for(name, "*")))
    if args.offline:
        return 0
    info = reg.info(name)
    if info.needs_key and reg.key_pool(name) is None:
        print(f"\nSet {info.primary_key_env} to also see the models {name}'s API lists now.")
        return 0
    print()
    print(report.models_text(name, reg.list_models(name)))
    return 0


def cmd_sessions(args: argparse.Namespace) -> int:
    """The saved sessions: id, model, turns, tokens, cost, last activity."""
    store = SessionStore()
    entries = store.entries()
    for entry in entries:
        if entry.problem:
            say_warning(entry.problem)
    if not any(not e.problem for e in entries):
        print(f"No saved sessions in {store.folder} yet: start one with `llm-magics chat`.")
        return 0
    print(report.sessions_text(entries))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """A saved session as JSON (the default), text or Markdown, printed or written."""
    conv = SessionStore().load(args.session_id)
    fmt = args.format
    if fmt is None and not (args.output and Path(args.output).suffix in (".json", ".md", ".txt")):
        fmt = "json"
    text = conv.export(args.output, format=fmt)
    if args.output:
        print(f"Wrote {len(conv)} turn(s) of {conv.name} to {args.output}")
    else:
        print(text.rstrip("\n"))
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    """A saved session's calls, tokens, cost and latency, by model."""
    conv = SessionStore().load(args.session_id)
    print(report.metrics_text(session_metrics(conv)))
    return 0


def cmd_summarize(args: argparse.Namespace) -> int:
    """A model-written summary of a saved session, kept as its memory (the session is saved)."""
    store = SessionStore()
    conv = store.load(args.session_id)
    if not conv.turns:
        raise ConfigError(f"session {conv.name!r} has no turns to summarise yet")
    text = conv.summarize(args.model)
    store.save(conv)
    if args.output:
        write_export(text.rstrip("\n") + "\n", args.output)
        print(f"Wrote the summary of {conv.name} ({conv.summary.covers} turn(s)) to {args.output}")
    else:
        print(text)
    return 0
