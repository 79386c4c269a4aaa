"""``%llm templates [NAME]``: the prompt templates ``%%llm --template`` can use, or one in full.

Main thread only, like every magic.
"""

from __future__ import annotations

import argparse

from IPython.core.magic_arguments import argument, magic_arguments

from .._core.fmt import records_table as table
from .host import MagicsHost

__all__ = ["cmd_templates"]

_WIDTH = 60


@magic_arguments("llm templates")
@argument("name", nargs="?", metavar="NAME", help="one template in full")
def cmd_templates(magics: MagicsHost, args: argparse.Namespace) -> None:
    """prompt templates for %%llm --template (one in full with NAME)"""
    from .._chat.templates import templates
    from .cell_template import find_template

    if args.name:
        print(find_template(args.name, magics._shell.user_ns).describe())
        return
    rows = [
        {**row, "description": _short(row["description"]), "source": _source(row["source"])}
        for row in templates.rows()
    ]
    print(table(rows, ["name", "variables", "description", "source"]))
    print(
        f"\nYour own: one TOML file per template in {templates.directory} "
        "(LLM_MAGICS_TEMPLATES_DIR); %llm templates NAME shows one in full."
    )
    for problem in templates.problems().values():
        print(f"Not loaded: {problem}")


def _short(text: str) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= _WIDTH else line[: _WIDTH - 1] + "…"


def _source(source: str) -> str:
    return source if source in ("", "built-in") else "file: " + source.rsplit("/", 1)[-1]
