"""The terminal app, ``llm-magics`` (also ``python -m llm_magics``): chat with any model, and
list, export, measure and summarise the saved sessions a notebook shares
(``lm.session_store()``). See :mod:`llm_magics.cli.app` for the commands.

The top layer beside ``notebook/``: it calls the Python API only, never the notebook's or the
DataFrame layer's code, and it is the one part of the package that imports rich.
"""

from __future__ import annotations

from .app import main, run

__all__ = ["main", "run"]
