"""A response-cache directory this process cannot write (a read-only mount, a shared folder
of someone else's, a full disk): read what it holds, write nothing, fail no call.

:class:`ReadOnlyStore` is the little of ``diskcache.Cache`` the response cache reads through
(``_sql``, ``get``, ``len``, ``volume``), on SQLite connections opened with ``mode=ro``. It
takes the same care as :class:`~llm_magics._cache.store.JSONDisk`: only plain bytes rows and value
files inside the directory are read; anything else is refused (``refuse``), never unpickled.

Thread safety: each thread opens its own read-only connection.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from diskcache.core import MODE_BINARY, MODE_RAW

__all__ = ["NoWriter", "ReadOnlyStore"]

_EMPTY_SCHEMA = (
    "CREATE TABLE Cache (rowid INTEGER PRIMARY KEY, key BLOB, raw INTEGER, store_time REAL,"
    " expire_time REAL, access_time REAL, access_count INTEGER, tag BLOB, size INTEGER,"
    " mode INTEGER, filename TEXT, value BLOB)"
)


class NoWriter:
    """The writer of a read-only cache: nothing is pending, nothing is ever written."""

    written = 0

    def pending(self, key: str) -> bytes | None:
        return None

    def put(self, key: str, body: bytes, tag: str) -> None:
        return None  # the user was told once that the cache cannot be written

    def flush(self, timeout: float = 30.0) -> bool:
        return True


class ReadOnlyStore:
    """Reads the ``cache.db`` of ``directory`` (an empty store when there is none)."""

    def __init__(self, directory: Path, refuse: Callable[[str, str], Exception]) -> None:
        self.directory = directory
        self._refuse = refuse
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = _open_read_only(self.directory / "cache.db")
            self._local.connection = connection
        return connection

    def _sql(self, query: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._connection().execute(query, params)

    def get(self, key: str, retry: bool = True) -> bytes | None:
        row = self._sql(
            "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1", (key,)
        ).fetchone()
        if row is None:
            return None
        mode, filename, value = row
        if mode == MODE_RAW and filename is None and isinstance(value, bytes):
            return value
        if mode == MODE_BINARY and filename:
            root = os.path.realpath(self.directory)
            full = os.path.realpath(os.path.join(root, filename))
            if os.path.commonpath([root, full]) == root and full != root:
                try:
                    return Path(full).read_bytes()
                except OSError:
                    return None
        raise self._refuse(str(self.directory), f"stored with diskcache mode {mode}")

    def __len__(self) -> int:
        return int(self._sql("SELECT COUNT(*) FROM Cache").fetchone()[0])

    def volume(self) -> int:
        pages = self._sql("PRAGMA page_count").fetchone()[0]
        size = self._sql("PRAGMA page_size").fetchone()[0]
        files = self._sql("SELECT COALESCE(SUM(size), 0) FROM Cache").fetchone()[0]
        return int(pages * size + files)

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def _open_read_only(database: Path) -> sqlite3.Connection:
    """``mode=ro``; where SQLite cannot even make the WAL index it needs for that (a folder
    this process may not write), ``immutable=1``; else an empty store."""
    for options in ("mode=ro", "mode=ro&immutable=1"):
        try:
            connection = sqlite3.connect(
                f"{database.resolve().as_uri()}?{options}", uri=True, isolation_level=None
            )
            connection.execute("SELECT 1 FROM Cache LIMIT 1").fetchall()
            return connection
        except (sqlite3.Error, OSError):
            continue
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute(_EMPTY_SCHEMA)
    return connection
