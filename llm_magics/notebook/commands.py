"""The ``%llm`` line commands (list, models, use, alias, register, keys, usage, cache, history,
reset, export): each parses its words and calls the Python API, then prints a small report.

The registry is always read as ``registry.current_registry()`` at call time (tests and users
may replace it). Main thread only, like every magic.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from IPython.core.error import UsageError

from .._core.fmt import text_table
from .host import MagicsHost

__all__ = ["COMMANDS", "run_command", "table"]


class _Parser(argparse.ArgumentParser):
    def __init__(self, prog: str, usage: str) -> None:
        super().__init__(prog=f"%llm {prog}", usage=f"%llm {prog} {usage}", add_help=False)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}. Usage: {self.usage}")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Plain aligned columns (monospace in notebooks and terminals alike)."""
    if not rows:
        return ""
    cols = list(columns or rows[0].keys())
    return text_table(cols, [[r.get(c, "") for c in cols] for r in rows])


def _registry() -> Any:
    from .._client import registry

    return registry.current_registry()


def _words(argv: list[str], command: str, usage: str, low: int, high: int) -> list[str]:
    if not low <= len(argv) <= high:
        raise UsageError(f"%llm {command}: expected {usage}; got {' '.join(argv) or 'nothing'}")
    return argv


def cmd_list(magics: MagicsHost, argv: list[str]) -> None:
    _words(argv, "list", "no arguments", 0, 0)
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


def cmd_models(magics: MagicsHost, argv: list[str]) -> None:
    (target,) = _words(argv, "models", "[PROVIDER]", 0, 1) or [
        magics.default_model or _registry().default_model()
    ]
    reg = _registry()
    name = target.partition(":")[0] if ":" in target else target
    if name not in [p["provider"] for p in reg.providers()]:
        name = reg.resolve(target).provider
    info = reg.info(name)
    client = reg.client(f"{name}:{info.default_model or 'default'}")
    models = client.list_models()
    print(f"{len(models)} models from {name}:" if models else f"{name} lists no models.")
    for model in models:
        print(f"  {name}:{model}" if name != "local" else f"  {model}")


def cmd_use(magics: MagicsHost, argv: list[str]) -> None:
    (model,) = _words(argv, "use", "MODEL (or `auto` for the automatic choice)", 1, 1)
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


def cmd_alias(magics: MagicsHost, argv: list[str]) -> None:
    name, model = _words(
        argv, "alias", "NAME MODEL, e.g. %llm alias fast groq:llama-3.3-70b-versatile", 2, 2
    )
    _registry().alias(name, model)
    print(f"{name} → {model}")


def cmd_register(magics: MagicsHost, argv: list[str]) -> None:
    import os

    parser = _Parser("register", "NAME BASE_URL [--key-env VAR] [--model DEFAULT_MODEL]")
    parser.add_argument("name")
    parser.add_argument("base_url")
    parser.add_argument("--key-env", dest="key_env")
    parser.add_argument("--model", default="")
    args = parser.parse_args(argv)
    if args.key_env and not args.key_env.replace("_", "").isalnum():
        raise UsageError(f"--key-env takes an environment variable name; got {args.key_env!r}")
    _registry().register(
        args.name, args.base_url, api_key_env=args.key_env, default_model=args.model
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


def cmd_keys(magics: MagicsHost, argv: list[str]) -> None:
    _words(argv, "keys", "no arguments", 0, 0)
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


def cmd_usage(magics: MagicsHost, argv: list[str]) -> None:
    _words(argv, "usage", "no arguments", 0, 0)
    usage = _optional("llm_magics._client.usage", "usage", "usage accounting")
    report = usage()
    _show(report)


def cmd_cache(magics: MagicsHost, argv: list[str]) -> None:
    words = _words(argv, "cache", "[stats | clear [MODEL]]", 0, 2) or ["stats"]
    action, rest = words[0], words[1:]
    if action == "stats" and not rest:
        _show(_optional("llm_magics._client.registry", "cache_stats", "the response cache")())
    elif action == "clear":
        clear = _optional("llm_magics._client.registry", "clear_cache", "the response cache")
        removed = clear(rest[0]) if rest else clear()
        what = f" for {rest[0]}" if rest else ""
        print(f"Removed {removed} cached answer(s){what}.")
    else:
        raise UsageError(
            f"%llm cache: expected stats, clear or clear MODEL; got {' '.join(words)!r}"
        )


def _show(report: Any) -> None:
    """A report object (usage, cache stats) as Markdown in notebooks, plain text elsewhere."""
    from IPython.display import display

    markdown = getattr(report, "_repr_markdown_", None)
    if callable(markdown):
        display({"text/markdown": markdown(), "text/plain": str(report)}, raw=True)
    else:
        display(report)


def _conversation(magics: MagicsHost, name: str) -> Any:
    if name not in magics.sessions:
        known = (
            ", ".join(magics.sessions.names()) or "none yet; start one with %%llm --session NAME"
        )
        raise UsageError(f"no session named {name!r} (sessions: {known})")
    return magics.sessions.get(name)


def cmd_history(magics: MagicsHost, argv: list[str]) -> None:
    words = _words(argv, "history", "[NAME]", 0, 1)
    if not words:
        rows = [
            {"session": c.name, "turns": len(c), "system": (c.system or "")[:60]}
            for c in magics.sessions
        ]
        print(table(rows) if rows else "No sessions yet: start one with %%llm --session NAME")
        return
    from IPython.display import display

    md = _conversation(magics, words[0]).to_markdown()
    display({"text/markdown": md, "text/plain": md}, raw=True)


def cmd_reset(magics: MagicsHost, argv: list[str]) -> None:
    words = _words(argv, "reset", "[NAME]", 0, 1)
    if words:
        _conversation(magics, words[0])
        magics.sessions.reset(words[0])
        print(f"Session {words[0]!r} forgotten.")
    else:
        names = magics.sessions.reset()
        print(f"Forgot {len(names)} session(s){': ' + ', '.join(names) if names else ''}.")


def cmd_export(magics: MagicsHost, argv: list[str]) -> None:
    parser = _Parser("export", "NAME [--format md|json] [--file PATH]")
    parser.add_argument("name")
    parser.add_argument("--format", choices=["md", "json"])
    parser.add_argument("--file")
    args = parser.parse_args(argv)
    conv = _conversation(magics, args.name)
    text = conv.export(args.file, format=args.format)
    if args.file:
        print(f"Wrote {len(conv)} turn(s) of {args.name!r} to {args.file}")
    else:
        print(text)


def cmd_help(magics: MagicsHost, argv: list[str]) -> None:
    print(magics.usage_text)


_COMMANDS: dict[str, Callable[[MagicsHost, list[str]], None]] = {
    "list": cmd_list,
    "models": cmd_models,
    "use": cmd_use,
    "alias": cmd_alias,
    "register": cmd_register,
    "keys": cmd_keys,
    "usage": cmd_usage,
    "cache": cmd_cache,
    "history": cmd_history,
    "reset": cmd_reset,
    "export": cmd_export,
    "help": cmd_help,
}


COMMANDS = tuple(_COMMANDS)


def run_command(magics: MagicsHost, command: str, argv: list[str]) -> None:
    _COMMANDS[command](magics, argv)
