"""Where settings come from: arguments first, then the environment, then ``.env`` in the working
directory (loaded once, never overriding a variable that is already set).

Which variables each vendor reads is the vendor catalog's (:mod:`llm_magics.providers.catalog`).
"""

from __future__ import annotations

import threading
from pathlib import Path

__all__ = ["load_dotenv_once"]


_dotenv_lock = threading.Lock()
_dotenv_loaded: set[Path] = set()


def load_dotenv_once(directory: Path | None = None) -> None:
    """Load ``.env`` from ``directory`` (default: the working directory) once per directory.
    Variables already in the environment win."""
    path = (directory or Path.cwd()) / ".env"
    with _dotenv_lock:
        if path in _dotenv_loaded:
            return
        _dotenv_loaded.add(path)
        if not path.is_file():
            return
        from dotenv import load_dotenv

        load_dotenv(path, override=False)
