"""The ``%llm`` line commands (list, models, use, alias, register, keys, usage, cache, history,
reset, export, templates, budget, help): each calls the Python API, then prints a small report.

Every command declares its arguments with IPython's ``magic_arguments``, as ``%%llm`` does, so
one parser per command both reads the words and writes the help (``%llm help``, ``%llm help
COMMAND``, ``%llm COMMAND -h``): the first line of a command's docstring is its summary.

The registry is always read as ``registry.current_registry()`` at call time (tests and users
may replace it). Main thread only, like every magic.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from .._core.fmt import records_table as table
from .budget_commands import cmd_budget
from .host import MagicsHost
from .session_commands import (
    cmd_chat,
    cmd_export,
    cmd_fork,
    cmd_history,
    cmd_load,
    cmd_reset,
    cmd_save,
    cmd_sessions,
    cmd_summarize,
    session_usage,
)
from .template_commands import cmd_templates

__all__ = ["COMMANDS", "commands_help", "run_command"]

Command = Callable[["MagicsHost", argparse.Namespace], None]


def _registry() -> Any:
    from .._client import registry

    return registry.current_registry()


@magic_arguments("llm list")
def cmd_list(magics: MagicsHost, args: argparse.Namespace) -> None:
    """providers, key status (configured/missing), aliases"""
    reg = _registry()
    rows = reg.providers()
    if magics.default_model:
        print(f"Default model: {magics.default_model}  (MagicsHost.default_model)")
    else:
        print(f"Default model: {reg.default_model()}  (change with %llm use MODEL)")
    print()
    print(table(rows, ["provider", "key", "default_model", "base_url"]))
    aliases = reg.aliases
    if aliases:
        print()
        print(table([{"alias": a, "model": m} for a, m in aliases.items()]))


@magic_arguments("llm models")
@argument(
    "provider",
    nargs="?",
    metavar="PROVIDER",
    help="a provider or model (default: the default model's)",
)
def cmd_models(magics: MagicsHost, args: argparse.Namespace) -> None:
    """models the provider offers (live, where the API lists them)"""
    reg = _registry()
    target = args.provider or magics.default_model or reg.default_model()
    name = target.partition(":")[0] if ":" in target else target
    if name not in [p["provider"] for p in reg.providers()]:
        name = reg.resolve(target).provider
    info = reg.info(name)
    client = reg.client(f"{name}:{info.default_model or 'default'}")
    models = client.list_models()
    print(f"{len(models)} models from {name}:" if models else f"{name} lists no models.")
    for model in models:
        print(f"  {name}:{model}" if name != "local" else f"  {model}")


@magic_arguments("llm use")
@argument(
    "model", metavar="MODEL", help="provider:model, an alias, or `auto` for the automatic choice"
)
def cmd_use(magics: MagicsHost, args: argparse.Namespace) -> None:
    """default model of this kernel (`%llm use auto` to undo)"""
    model = args.model
    reg = _registry()
    if model.lower() in ("auto", "default", "none"):
        reg.use(None)
        magics.default_model = ""
        print(f"Default model: {reg.default_model()} (automatic)")
        return
    reg.use(model)
    magics.default_model = model
    ref = reg.resolve(model)
    shown = model if str(ref) == model else f"{model} ({ref})"
    print(f"Default model: {shown}")


@magic_arguments("llm alias")
@argument("name", metavar="NAME", help="the new name, e.g. fast")
@argument("model", metavar="MODEL", help="what it stands for, e.g. groq:llama-3.3-70b-versatile")
def cmd_alias(magics: MagicsHost, args: argparse.Namespace) -> None:
    """a short name for a model, e.g. %llm alias fast groq:llama-3.3-70b"""
    _registry().alias(args.name, args.model)
    print(f"{args.name} → {args.model}")


@magic_arguments("llm register")
@argument("name", metavar="NAME", help="the provider name to use in NAME:MODEL")
@argument("base_url", metavar="BASE_URL", help="the server's API root, e.g. http://gpu-box:8000/v1")
@argument(
    "--key-env", dest="key_env", metavar="VAR", help="the environment variable of its API key"
)
@argument("--model", default="", metavar="DEFAULT", help="the model NAME alone stands for")
@argument(
    "--like",
    metavar="VENDOR",
    help="behave as this built-in vendor (its protocol, quirks, media limits, prices): "
    "for a proxy or gateway in front of it",
)
def cmd_register(magics: MagicsHost, args: argparse.Namespace) -> None:
    """an OpenAI-compatible server (or a proxy --like a vendor), then NAME:MODEL"""
    import os

    if args.key_env and not args.key_env.replace("_", "").isalnum():
        raise UsageError(f"--key-env takes an environment variable name; got {args.key_env!r}")
    _registry().register(
        args.name, args.base_url, api_key_env=args.key_env, default_model=args.model, like=args.like
    )
    if args.key_env:
        state = "configured" if os.environ.get(args.key_env, "").strip() else "missing: set it"
        key = f"key from {args.key_env} ({state})"
    else:
        key = "no key"
    model = args.model or "MODEL"
    print(
        f"Registered {args.name} → {args.base_url.rstrip('/')}, {key}. Use it as {args.name}:{model}"
    )


@magic_arguments("llm keys")
def cmd_keys(magics: MagicsHost, args: argparse.Namespace) -> None:
    """API keys in use (masked), their state and usage"""
    reg = _registry()
    rows = []
    for p in reg.providers():
        pool = reg.key_pool(p["provider"])
        if pool is None:
            continue
        for status in pool.status():
            rows.append({"provider": p["provider"], **status})
    if not rows:
        print(
            "No API keys configured. Set OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, "
            "GROQ_API_KEY or CEREBRAS_API_KEY (or <P>_API_KEYS=k1,k2 for rotation); "
            "`local` needs none. %llm list shows each provider's status."
        )
        return
    print(table(rows))


def _optional(module: str, attribute: str, feature: str) -> Callable[..., Any]:
    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        raise UsageError(f"{feature} is not available in this version of llm_magics") from None
    if not callable(found):
        raise UsageError(f"{feature} is not available in this version of llm_magics")
    return found


@magic_arguments("llm usage")
@argument("session", nargs="?", metavar="NAME", help="one --session conversation's usage")
def cmd_usage(magics: MagicsHost, args: argparse.Namespace) -> None:
    """tokens and cost of this kernel by model (of one session with NAME)"""
    if args.session:
        session_usage(magics, args.session)
        return
    usage = _optional("llm_magics._client.usage", "usage", "usage accounting")
    report = usage()
    _show(report)


@magic_arguments("llm cache")
@argument(
    "action",
    nargs="?",
    default="stats",
    choices=["stats", "clear"],
    metavar="stats|clear",
    help="stats (default) or clear",
)
@argument("model", nargs="?", metavar="MODEL", help="clear only this model's answers")
def cmd_cache(magics: MagicsHost, args: argparse.Namespace) -> None:
    """the response cache: its size, or clear it (all, or one MODEL's answers)"""
    if args.action == "stats":
        if args.model:
            raise UsageError(
                f"%llm cache stats takes no MODEL; to clear one: %llm cache clear {args.model}"
            )
        _show(_optional("llm_magics._client.registry", "cache_stats", "the response cache")())
        return
    clear = _optional("llm_magics._client.registry", "clear_cache", "the response cache")
    removed = clear(args.model) if args.model else clear()
    what = f" for {args.model}" if args.model else ""
    print(f"Removed {removed} cached answer(s){what}.")


def _show(report: Any) -> None:
    """A report object (usage, cache stats) as Markdown in notebooks, plain text elsewhere."""
    from IPython.display import display

    markdown = getattr(report, "_repr_markdown_", None)
    if callable(markdown):
        display({"text/markdown": markdown(), "text/plain": str(report)}, raw=True)
    else:
        display(report)


@magic_arguments("llm help")
@argument("command", nargs="?", metavar="COMMAND", help="one command's arguments in full")
def cmd_help(magics: MagicsHost, args: argparse.Namespace) -> None:
    """this text (`%llm help COMMAND`: one command in full)"""
    if args.command is None:
        print(magics.usage_text)
        return
    print(_command(args.command).parser.format_help())


_COMMANDS: dict[str, Any] = {
    "list": cmd_list,
    "models": cmd_models,
    "use": cmd_use,
    "alias": cmd_alias,
    "register": cmd_register,
    "keys": cmd_keys,
    "usage": cmd_usage,
    "cache": cmd_cache,
    "sessions": cmd_sessions,
    "history": cmd_history,
    "reset": cmd_reset,
    "fork": cmd_fork,
    "save": cmd_save,
    "load": cmd_load,
    "export": cmd_export,
    "summarize": cmd_summarize,
    "chat": cmd_chat,
    "templates": cmd_templates,
    "budget": cmd_budget,
    "help": cmd_help,
}


COMMANDS = tuple(_COMMANDS)


def _command(name: str) -> Any:
    found = _COMMANDS.get(name)
    if found is None:
        raise UsageError(
            f"unknown %llm command {name!r}. Commands: {', '.join(COMMANDS)}. "
            "To ask a question, use the cell magic: %%llm on the first line, the prompt below."
        )
    return found


def _usage(command: Any) -> str:
    # IPython's formatter writes usage as an RST block, "::" then "%" + prog.
    return " ".join(command.parser.format_usage().split()).removeprefix(":: ")


def commands_help() -> str:
    """The summary of every line command, generated from their parsers."""
    lines = []
    for command in _COMMANDS.values():
        usage = _usage(command)
        summary = command.parser.description.strip().splitlines()[0]
        if len(usage) < 34:
            lines.append(f"    {usage:<34}{summary}")
        else:
            lines += [f"    {usage}", f"    {'':<34}{summary}"]
    return "\n".join(lines)


def run_command(magics: MagicsHost, name: str, argv: list[str]) -> None:
    """Run ``%llm NAME ARGV...``; ``-h``/``--help`` among the words prints its help instead."""
    command = _command(name)
    if "-h" in argv or "--help" in argv:
        print(command.parser.format_help())
        return
    try:
        args = command.parser.parse_args(argv)
    except UsageError as exc:
        raise UsageError(
            f"%llm {name}: {exc}; expected {_usage(command)} (%llm help {name})"
        ) from None
    command(magics, args)
