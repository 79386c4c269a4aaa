"""The kernel's named conversations: ``lm.session(name)`` is the very object that
``%%llm --session name`` continues, and ``lm.sessions()`` lists them.

The store is a part of the kernel session (:mod:`llm_magics._core.session`), so
``SESSION.reset()`` forgets it with the rest. Thread safety: the store guards its dict with a
lock; a conversation itself is meant for one thread (a notebook's main thread).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from .._core.session import SESSION
from .memory import Conversation

__all__ = ["Conversations", "session", "sessions"]


class Conversations:
    """Conversations by name, created on first use. Thread-safe."""

    def __init__(self, *, max_history: int | None = None) -> None:
        self.max_history = max_history
        self._lock = threading.Lock()
        self._by_name: dict[str, Conversation] = {}

    def get(self, name: str, *, create: bool = True) -> Conversation:
        with self._lock:
            conv = self._by_name.get(name)
            if conv is None:
                if not create:
                    known = ", ".join(self._by_name) or "none yet"
                    raise KeyError(f"no conversation named {name!r} (sessions: {known})")
                conv = self._by_name[name] = Conversation(name, max_history=self.max_history)
            return conv

    __getitem__ = get

    def put(self, conv: Conversation) -> None:
        """Keep ``conv`` under its name (replacing one of that name)."""
        with self._lock:
            self._by_name[conv.name] = conv

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Conversation]:
        return iter(list(self._by_name.values()))

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> list[str]:
        return list(self._by_name)

    def reset(self, name: str | None = None) -> list[str]:
        """Forget one conversation, or all when ``name`` is None; the names that were reset."""
        with self._lock:
            if name is None:
                names = list(self._by_name)
                self._by_name.clear()
                return names
            if name not in self._by_name:
                known = ", ".join(self._by_name) or "none yet"
                raise KeyError(f"no conversation named {name!r} (sessions: {known})")
            del self._by_name[name]
            return [name]


def session(name: str = "default", **settings: Any) -> Conversation:
    """The conversation ``name`` of this kernel, made on first use (with ``settings``: system=,
    model=, max_tokens=, truncation=, max_history=; given later, they update it). The same
    object ``%%llm --session name`` continues."""
    conv = SESSION.get(Conversations).get(name)
    conv.configure(**settings)
    return conv


def sessions() -> list[Conversation]:
    """The conversations of this kernel, oldest first."""
    return list(SESSION.get(Conversations))
