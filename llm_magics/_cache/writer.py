"""Batched writes for the response cache: one writer thread per cache commits the answers
that arrived within a short window as one SQLite transaction.

At hundreds of answers per second a transaction per answer was the largest cost of a cached
``df.llm.map`` run, and it ran on the event loop. Pending answers stay readable through
:meth:`BatchWriter.pending` until they are on disk, and every writer is flushed at interpreter
exit.

Thread safety: every method may be called from any thread. Fork safety: a forked child starts
its own writer thread on its first write (the parent's does not exist there).
"""

from __future__ import annotations

import atexit
import logging
import os
import sqlite3
import threading
import time
import weakref

import diskcache

from .sql import write_many

__all__ = ["BatchWriter", "cache_clock"]

log = logging.getLogger("llm_magics._cache.store")

#: A batch is committed this long after its first answer arrived, or when it is this big,
#: or at once when someone flushes.
BATCH_WINDOW = 0.1
BATCH_ROWS = 256


def cache_clock() -> float:
    """The cache's clock is diskcache's (looked up per call, so a test can move it)."""
    return float(diskcache.core.time.time())


Pending = tuple[bytes, str, float]  # body, tag, when put


class BatchWriter:
    """Queues ``(key, body, tag)`` writes for ``store`` and commits them in batches."""

    def __init__(self, store: diskcache.Cache, *, ttl: float | None, size_limit: int) -> None:
        self._store = store
        self._ttl = ttl
        self._size_limit = size_limit
        # Asking SQLite for the volume costs two statements; ask once per 1/64th of the limit
        # written (the cache may overshoot its limit by that much until the next check).
        self._check_every = max(1, size_limit // 64)
        self._unchecked = self._check_every
        self._pending: dict[str, Pending] = {}
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._thread_pid: int | None = None
        self._hurry = False
        self.written = 0
        _writers.add(self)

    def pending(self, key: str) -> bytes | None:
        """The body of a write not yet on disk (None when expired before it got there)."""
        with self._changed:
            entry = self._pending.get(key)
        if entry is None:
            return None
        if self._ttl is not None and cache_clock() - entry[2] > self._ttl:
            return None
        return entry[0]

    def put(self, key: str, body: bytes, tag: str) -> None:
        with self._changed:
            self._pending[key] = (body, tag, cache_clock())
            # Wake the writer only when it has something new to decide: a first answer to
            # wait for, or a full batch. A wake-up per answer costs a thread switch each.
            if len(self._pending) == 1 or len(self._pending) >= BATCH_ROWS:
                self._changed.notify_all()
            thread = self._thread
            if thread is None or self._thread_pid != os.getpid() or not thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="llm_magics-cache-writer", daemon=True
                )
                self._thread_pid = os.getpid()
                self._thread.start()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every pending write is on disk; False if that took over ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            self._hurry = True
            self._changed.notify_all()
            while self._pending and self._thread is not None and self._thread.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            if not self._pending:
                return True
            batch = dict(self._pending)  # no writer (e.g. after fork): write here
        self._commit(batch)
        return True

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._pending:
                    self._changed.wait()
                # Answers that arrive together share one commit: a commit's cost is mostly
                # per transaction (index pages, the WAL frame), so 16 answers per commit
                # cost about twice as much each as 256 (bench/cache.py, write_many).
                deadline = time.monotonic() + BATCH_WINDOW
                while not self._hurry and len(self._pending) < BATCH_ROWS:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._changed.wait(remaining)
                self._hurry = False
                batch = dict(self._pending)
            self._commit(batch)

    def _commit(self, batch: dict[str, Pending]) -> None:
        store = self._store
        try:
            ttl = self._ttl
            # The TTL counts from put(), not from this commit.
            rows = [
                (key, body, tag, None if ttl is None else stored + ttl)
                for key, (body, tag, stored) in batch.items()
            ]
            write_many(store, rows, cache_clock())
            # Culling inside the transaction would over-evict (freed pages only shrink the
            # file at commit), so the store is created with cull_limit=0 and culled here.
            self._unchecked += sum(len(row[1]) for row in rows)
            if self._unchecked >= self._check_every:
                self._unchecked = 0
                if store.volume() > self._size_limit:
                    store.cull(retry=True)
        except (sqlite3.Error, diskcache.Timeout, OSError) as exc:
            log.warning("response cache write failed (%s); %d answers not cached", exc, len(batch))
        with self._changed:
            for key, entry in batch.items():
                if self._pending.get(key) is entry:
                    del self._pending[key]
            self.written += len(batch)
            self._changed.notify_all()


_writers: weakref.WeakSet[BatchWriter] = weakref.WeakSet()


@atexit.register
def flush_all(timeout: float = 10.0) -> None:
    """Flush every writer of this process (at exit, and for tests that read the files)."""
    for writer in list(_writers):
        writer.flush(timeout)
