"""The kernel session: the one object that holds everything a kernel accumulates.

The registry (providers, aliases, the default model, key pools), usage totals, price
overrides and response hooks are each one *part* of the session, made on first use by its
class and kept until :meth:`Session.reset`. Modules never keep such state in globals of their
own; they ask ``SESSION.get(TheirClass)``. A test (or a user) starts over with one call,
``SESSION.reset()``, and can install a stand-in with :meth:`Session.put`.

What is not kernel state stays where it is: the private loop thread and HTTP pools (process
resources), remembered secrets (never forgotten while the process runs), open caches.

Thread safety: every method may be called from any thread; a part is made once.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

__all__ = ["SESSION", "Session"]

T = TypeVar("T")


class Session:
    """The state of one kernel, part by part (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._parts: dict[type, Any] = {}

    def get(self, kind: type[T]) -> T:
        """The session's ``kind`` part, made with ``kind()`` on first use."""
        part = self._parts.get(kind)
        if part is None:
            with self._lock:
                part = self._parts.get(kind)
                if part is None:
                    part = self._parts[kind] = kind()
        return part

    def put(self, kind: type[T], part: T) -> None:
        """Use ``part`` as the ``kind`` part from now on (a stand-in in tests)."""
        with self._lock:
            self._parts[kind] = part

    def reset(self) -> None:
        """Forget every part: the next use of each starts from a fresh one."""
        with self._lock:
            self._parts.clear()

    def __repr__(self) -> str:
        names = ", ".join(sorted(k.__name__ for k in self._parts))
        return f"Session({names})"


#: The session of this process, which in Jupyter is one kernel.
SESSION = Session()
