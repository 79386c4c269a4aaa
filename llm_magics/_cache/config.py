"""Where the response cache lives and how much it keeps, read from the environment.

``LLM_MAGICS_CACHE_DIR`` (default: the platform's user cache directory, e.g.
``~/.cache/llm_magics``), created owner-only (0o700); ``LLM_MAGICS_CACHE_SIZE`` (bytes, or
``500MB``, ``2GB``; default 1GB) and ``LLM_MAGICS_CACHE_TTL`` (seconds, or ``30m``, ``12h``,
``7d``; default: no expiry). A bad value is a ConfigError naming the variable.

Thread safety: the variables are read on every call; the one piece of shared state, the set
of directories already reported read-only, is guarded by a lock (per process).
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from pathlib import Path

from .._core.errors import ConfigError

__all__ = [
    "DEFAULT_SIZE_LIMIT",
    "ENV_DIR",
    "ENV_SIZE",
    "ENV_TTL",
    "default_directory",
    "private_directory",
    "size_from_env",
    "ttl_from_env",
    "warn_read_only",
]

# The store's logger: these warnings are about the cache the user configured.
log = logging.getLogger("llm_magics._cache.store")

DEFAULT_SIZE_LIMIT = 2**30
ENV_DIR = "LLM_MAGICS_CACHE_DIR"
ENV_SIZE = "LLM_MAGICS_CACHE_SIZE"
ENV_TTL = "LLM_MAGICS_CACHE_TTL"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def default_directory() -> Path:
    """``LLM_MAGICS_CACHE_DIR``, else the platform's user cache directory."""
    configured = os.environ.get(ENV_DIR, "").strip()
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("llm_magics", appauthor=False))


def private_directory(path: Path) -> Path:
    """``path``, created owner-only when new; a warning when an existing one is shared."""
    try:
        existed = path.is_dir()
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not existed:
            os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask; be explicit
    except OSError as exc:
        raise ConfigError(
            f"cannot create the response cache directory {path}: {exc}. Set {ENV_DIR} to a "
            "writable directory, or pass cache=False."
        ) from exc
    if existed:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning(
                "the response cache directory %s is readable by other users (mode %o); "
                "`chmod 700` it unless you share it on purpose",
                path,
                stat.S_IMODE(mode),
            )
    return path


def size_from_env() -> int:
    """``LLM_MAGICS_CACHE_SIZE`` in bytes (at least 64KB), else the default of 1GB."""
    raw = os.environ.get(ENV_SIZE, "").strip()
    if not raw:
        return DEFAULT_SIZE_LIMIT
    match = _SIZE.match(raw)
    if not match:
        raise ConfigError(
            f"{ENV_SIZE}={raw!r} is not a size; write bytes or a number with a unit, "
            "e.g. 500MB or 2GB"
        )
    unit = (match.group(2) or "").lower()[:1]
    size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if size < 2**16:
        raise ConfigError(f"{ENV_SIZE}={raw!r} is too small; use at least 64KB")
    return size


def ttl_from_env() -> float | None:
    """``LLM_MAGICS_CACHE_TTL`` in seconds; None (never expire) when unset or 0."""
    raw = os.environ.get(ENV_TTL, "").strip()
    if not raw:
        return None
    match = _DURATION.match(raw)
    if not match:
        raise ConfigError(
            f"{ENV_TTL}={raw!r} is not a duration; write seconds or a number with s, m, h, d "
            "or w, e.g. 3600 or 7d (0 or empty: never expire)"
        )
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
    return seconds or None


_read_only_lock = threading.Lock()
_read_only_warned: set[str] = set()


def warn_read_only(directory: Path, exc: BaseException) -> None:
    """Once per directory and process: the cache can be read but not written."""
    with _read_only_lock:
        if str(directory) in _read_only_warned:
            return
        _read_only_warned.add(str(directory))
    log.warning(
        "the response cache %s cannot be written (%s): cached answers are still read from it, "
        "new ones are not stored. Set %s to a writable directory to cache them.",
        directory,
        exc,
        ENV_DIR,
    )
