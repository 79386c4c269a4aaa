"""``python -m llm_magics``: the terminal app, as the ``llm-magics`` command."""

from __future__ import annotations

from llm_magics.cli import run

if __name__ == "__main__":
    run()
