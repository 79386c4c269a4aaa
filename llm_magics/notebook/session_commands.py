"""The ``%llm`` commands over the kernel's conversations (the ``--session`` ones, which are
``lm.session(name)``): sessions, history, reset, fork, save, load, export. Each calls the
Python API of :class:`~llm_magics._chat.memory.Conversation`.

Main thread only, like every magic.
"""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from .._core.fmt import money
from .._core.fmt import records_table as table
from .host import MagicsHost

__all__ = [
    "cmd_chat",
    "cmd_export",
    "cmd_fork",
    "cmd_history",
    "cmd_load",
    "cmd_reset",
    "cmd_save",
    "cmd_sessions",
    "cmd_summarize",
    "session_usage",
]


def _conversation(magics: MagicsHost, name: str) -> Any:
    if name not in magics.sessions:
        known = (
            ", ".join(magics.sessions.names()) or "none yet; start one with %%llm --session NAME"
        )
        raise UsageError(f"no session named {name!r} (sessions: {known})")
    return magics.sessions.get(name)


@magic_arguments("llm history")
@argument("name", nargs="?", metavar="NAME", help="the session to show")
def cmd_history(magics: MagicsHost, args: argparse.Namespace) -> None:
    """a --session conversation (all sessions without NAME)"""
    if not args.name:
        rows = [
            {"session": c.name, "turns": len(c), "system": (c.system or "")[:60]}
            for c in magics.sessions
        ]
        print(table(rows) if rows else "No sessions yet: start one with %%llm --session NAME")
        return
    from IPython.display import display

    md = _conversation(magics, args.name).to_markdown()
    display({"text/markdown": md, "text/plain": md}, raw=True)


@magic_arguments("llm reset")
@argument("name", nargs="?", metavar="NAME", help="the session to forget")
def cmd_reset(magics: MagicsHost, args: argparse.Namespace) -> None:
    """forget one conversation (all without NAME)"""
    if args.name:
        _conversation(magics, args.name)
        magics.sessions.reset(args.name)
        print(f"Session {args.name!r} forgotten.")
    else:
        names = magics.sessions.reset()
        print(f"Forgot {len(names)} session(s){': ' + ', '.join(names) if names else ''}.")


@magic_arguments("llm export")
@argument("name", metavar="NAME", help="the session to export")
@argument(
    "--format",
    choices=["md", "json", "text"],
    help="md, json or text (default: from --file's suffix, else md)",
)
@argument("--file", metavar="PATH", help="write it there instead of printing it")
def cmd_export(magics: MagicsHost, args: argparse.Namespace) -> None:
    """a conversation as Markdown, JSON or text (never any key)"""
    conv = _conversation(magics, args.name)
    text = conv.export(args.file, format=args.format)
    if args.file:
        print(f"Wrote {len(conv)} turn(s) of {args.name!r} to {args.file}")
    else:
        print(text)


@magic_arguments("llm sessions")
def cmd_sessions(magics: MagicsHost, args: argparse.Namespace) -> None:
    """the conversations of this kernel: model, turns, tokens, cost"""
    rows = []
    for conv in magics.sessions:
        used = conv.usage
        cost = _cost(used) if used.calls else "-"
        models = sorted({t.model for t in conv.turns if t.model})
        rows.append(
            {
                "session": conv.name,
                "model": ", ".join(models) or (conv.model or "-"),
                "turns": len(conv),
                "tokens": used.tokens,
                "cost": cost,
            }
        )
    print(table(rows) if rows else "No sessions yet: start one with %%llm --session NAME")


@magic_arguments("llm summarize")
@argument("name", metavar="NAME", help="the session to summarise")
@argument("--model", metavar="MODEL", help="the model that writes it (default: the session's)")
def cmd_summarize(magics: MagicsHost, args: argparse.Namespace) -> None:
    """a model-written summary of a session (kept as its memory summary)"""
    from IPython.display import display

    conv = _conversation(magics, args.name)
    if not conv.turns:
        raise UsageError(f"session {args.name!r} has no turns to summarise yet")
    text = conv.summarize(args.model)
    covers = conv.summary.covers
    note = (
        f"Requests of {args.name!r} now carry this summary in place of its first {covers} "
        "turn(s); every turn stays in %llm history."
        if conv.truncation == "summarize"
        else f"Covers {covers} turn(s). Requests still send the turns themselves "
        "(truncation='summarize' would send this instead)."
    )
    md = f"**Summary of `{args.name}`**\n\n{text}\n\n*{note}*"
    display({"text/markdown": md, "text/plain": f"{text}\n\n{note}"}, raw=True)


@magic_arguments("llm chat")
@argument(
    "name", nargs="?", default="default", metavar="NAME", help="the session (default: default)"
)
@argument("--model", metavar="MODEL", help="the model to start with (a picker lets you change it)")
def cmd_chat(magics: MagicsHost, args: argparse.Namespace) -> None:
    """a chat widget bound to a session: type, press Enter, watch the answer stream in"""
    from IPython.display import display

    from .chat_widget import ChatWidget

    conv = magics.sessions.get(args.name)
    display(ChatWidget(conv, model=args.model or magics.default_model or None))


@magic_arguments("llm fork")
@argument("name", metavar="NAME", help="the session to copy")
@argument("new", metavar="NEW", help="the name of the copy")
def cmd_fork(magics: MagicsHost, args: argparse.Namespace) -> None:
    """a copy of a session to go on differently: %llm fork plan plan-b"""
    if args.new in magics.sessions:
        raise UsageError(f"a session named {args.new!r} exists already; pick another name")
    twin = _conversation(magics, args.name).fork(args.new)
    magics.sessions.put(twin)
    print(f"{args.new} ← {args.name} ({len(twin)} turn(s)); continue it with --session {args.new}")


@magic_arguments("llm save")
@argument("name", metavar="NAME", help="the session to save")
@argument(
    "path",
    nargs="?",
    metavar="PATH",
    help="the JSON file to write (default: the saved-session store that llm-magics uses)",
)
def cmd_save(magics: MagicsHost, args: argparse.Namespace) -> None:
    """a session to a JSON file or the session store (never any key); %llm load reads it"""
    conv = _conversation(magics, args.name)
    if args.path:
        conv.save(args.path)
        where = args.path
    else:
        from .._chat.store import session_store

        where = str(session_store().save(conv))
        where += f" (continue it in a terminal: llm-magics chat --session {conv.name})"
    print(f"Saved {len(conv)} turn(s) of {args.name!r} to {where}")


@magic_arguments("llm load")
@argument(
    "source",
    metavar="PATH|NAME",
    help="a file written by %%llm save or Conversation.save, or a name in the session store",
)
@argument("name", nargs="?", metavar="NAME", help="the session name (default: the saved one)")
def cmd_load(magics: MagicsHost, args: argparse.Namespace) -> None:
    """a saved session back into this kernel, as NAME or its saved name"""
    from pathlib import Path

    from .._chat.memory import Conversation
    from .._chat.store import session_store

    store = session_store()
    source = args.source
    if not Path(source).expanduser().exists() and source in store:
        conv = store.load(source)
    else:
        conv = Conversation.load(source)
    if args.name:
        conv.name = args.name
    replaced = conv.name in magics.sessions
    magics.sessions.put(conv)
    what = "replaced the session" if replaced else "loaded as"
    print(f"{len(conv)} turn(s) {what} {conv.name!r}; continue it with --session {conv.name}")


def session_usage(magics: MagicsHost, name: str) -> None:
    """``%llm usage NAME``: what one conversation's turns took, by model."""
    from .._chat.metrics import session_metrics

    metrics = session_metrics(_conversation(magics, name))
    rows = [
        {
            "model": label,
            "calls": used.calls,
            "input tok": used.input_tokens,
            "output tok": used.output_tokens,
            "cost": _cost(used),
        }
        for label, used in [
            *((row.label, row) for row in metrics.by_model),
            (f"session {name}", metrics.total),
        ]
    ]
    print(table(rows))


def _cost(used: Any) -> str:
    """Money of the priced turns, '+?' when some turn's price is unknown."""
    return money(used.cost) + ("+?" if used.unpriced else "")
