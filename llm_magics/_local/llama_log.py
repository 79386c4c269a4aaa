"""llama.cpp's own log, kept out of the notebook.

llama.cpp prints warnings and errors to stderr even with ``verbose=False``, and a kernel
forwards that into the notebook. Its lines go to the ``llm_magics.local`` logger at DEBUG
instead, and the latest are kept so an error message can quote what llama.cpp said.

Thread safety: the callback is installed once per process, under a lock; llama.cpp may call
it from any thread (appending to a bounded deque is atomic).
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any

__all__ = ["quiet_llama_log", "recent_llama_log"]

_log = logging.getLogger("llm_magics.local")

_recent_log: collections.deque[str] = collections.deque(maxlen=20)
_log_callback: Any = None
_log_lock = threading.Lock()


def quiet_llama_log(llama_cpp: Any) -> None:
    """Route llama.cpp's log of this process to the logger (once; later calls do nothing)."""
    global _log_callback
    with _log_lock:
        if _log_callback is not None:
            return

        @llama_cpp.llama_log_callback
        def _callback(level: int, text: bytes, user_data: Any) -> None:
            line = text.decode("utf-8", "replace").rstrip()
            if line:
                _recent_log.append(line)
                _log.debug("llama.cpp: %s", line)

        llama_cpp.llama_log_set(_callback, None)
        _log_callback = _callback  # ctypes callbacks must outlive their registration


def recent_llama_log(lines: int = 3) -> str:
    """The last ``lines`` lines llama.cpp logged, joined for an error message."""
    return " | ".join(list(_recent_log)[-lines:])
