"""``%llm budget [USD|off]``: the kernel's spending limit (``lm.budget``), set, lifted or shown.

Main thread only, like every magic.
"""

from __future__ import annotations

import argparse

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from .._core.errors import ConfigError
from .host import MagicsHost

__all__ = ["cmd_budget"]


@magic_arguments("llm budget")
@argument(
    "usd",
    nargs="?",
    metavar="USD|off",
    help="the most this kernel may spend, in US dollars (e.g. 5 or $2.50), or off",
)
def cmd_budget(magics: MagicsHost, args: argparse.Namespace) -> None:
    """the kernel's spending limit: set (USD), lift (off) or show it"""
    from .._client.budget import budget

    if args.usd is None:
        print(budget())
        return
    word = args.usd.strip().lower()
    if word in ("off", "none"):
        print(budget(None))
        return
    try:
        amount = float(word.removeprefix("$").replace(",", "").replace("_", ""))
        status = budget(amount)
    except (ValueError, ConfigError):
        raise UsageError(
            f"%llm budget takes an amount in US dollars (e.g. %llm budget 5) or off; "
            f"got {args.usd!r}"
        ) from None
    print(status)
