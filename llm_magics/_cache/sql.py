"""The response cache's hot paths as plain SQL on diskcache's own table.

diskcache's Python API costs more than the SQLite work under it: ``Cache.set`` runs a SELECT
and an INSERT per value, ``Cache.get`` builds its query and unpacks rows in Python. At
thousands of lookups a second (a cached rerun, a ``df.llm.map`` over 10,000 rows) that was
most of what the cache cost. These functions read and write the very rows diskcache does
(the schema of diskcache 5: ``Cache(key, raw, store_time, expire_time, access_time,
access_count, tag, size, mode, filename, value)``), so everything else (eviction, culling,
expiry, ``len``, volume, tags, clear) stays diskcache's, and diskcache's triggers keep its
count and size metadata right for rows written here.

What takes the fast path, and what does not:

* Reads return only plain inline values (``MODE_RAW`` bytes) of str keys. Anything else (an
  answer over diskcache's inline threshold, kept in a value file; a row in any other mode,
  such as a planted pickle) is reported as :data:`FALLBACK` and the caller reads it through
  diskcache and :class:`~llm_magics._cache.store.JSONDisk`, which refuses it. The security checks
  live in one place.
* Writes: one ``INSERT ... ON CONFLICT DO UPDATE`` of up to 128 rows per statement for answers
  small enough to live inline, replacing rows that hold inline values. A large answer, or one
  that replaces a row with a value file (which must be deleted), goes through ``Cache.set``.

Thread and process safety: as diskcache's. Each thread uses its own connection (diskcache's
thread-local one); writes run inside ``Cache.transact``, and SQLite's locking (WAL) serialises
writers across processes, so two kernels sharing a directory lose nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Final

import diskcache
from diskcache.core import MODE_RAW

__all__ = ["FALLBACK", "read_many", "read_one", "write_many"]


class _Fallback:
    def __repr__(self) -> str:
        return "FALLBACK"


#: A row exists but is not a plain inline value: read it through diskcache instead.
FALLBACK: Final = _Fallback()

#: SQLite's default limit on host parameters in one statement is 999 (before 3.32).
CHUNK = 500

# UPSERT needs SQLite 3.24; older builds take diskcache's own path for every write.
_HAS_UPSERT = sqlite3.sqlite_version_info >= (3, 24, 0)

_SELECT_ONE = (
    "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1"
    " AND (expire_time IS NULL OR expire_time > ?)"
)

#: Rows per INSERT statement (7 parameters each, under the 999-parameter limit).
ROWS_PER_INSERT = 128
_ROW = "(?, 1, ?, ?, ?, 0, ?, 0, ?, NULL, ?)"
_UPSERT = (
    "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count, tag,"
    " size, mode, filename, value) VALUES {rows}"
    " ON CONFLICT(key, raw) DO UPDATE SET store_time = excluded.store_time,"
    " expire_time = excluded.expire_time, access_time = excluded.access_time,"
    " access_count = 0, tag = excluded.tag, size = 0, mode = excluded.mode,"
    " filename = NULL, value = excluded.value"
)

Row = tuple[str, bytes, str, float | None]  # key, body, tag, expire_time


def _value(mode: int, filename: str | None, value: object) -> bytes | _Fallback:
    if mode == MODE_RAW and filename is None and isinstance(value, bytes):
        return value
    return FALLBACK


def read_one(store: diskcache.Cache, key: str, now: float) -> bytes | _Fallback | None:
    """The inline value of ``key``, None when absent or expired, else :data:`FALLBACK`.
    Raises ``sqlite3.Error`` (e.g. the database is locked): the caller falls back."""
    row = store._sql(_SELECT_ONE, (key, now)).fetchone()
    return None if row is None else _value(*row)


def read_many(
    store: diskcache.Cache, keys: Sequence[str], now: float
) -> tuple[dict[str, bytes], list[str]]:
    """Values of those ``keys`` that are present and unexpired, in one query per 500 keys;
    and the keys to read through diskcache instead (see :data:`FALLBACK`)."""
    found: dict[str, bytes] = {}
    fallback: list[str] = []
    for chunk, marks in _in_chunks(list(dict.fromkeys(keys))):
        rows = store._sql(
            f"SELECT key, mode, filename, value FROM Cache WHERE raw = 1 AND key IN ({marks})"
            " AND (expire_time IS NULL OR expire_time > ?)",
            (*chunk, now),
        ).fetchall()
        for key, mode, filename, value in rows:
            got = _value(mode, filename, value)
            if isinstance(got, bytes):
                found[key] = got
            else:
                fallback.append(key)
    return found, fallback


def write_many(store: diskcache.Cache, rows: Iterable[Row], now: float) -> None:
    """Store ``rows`` in one transaction (retried while another process holds the lock)."""
    inline: list[Row] = []
    other: list[Row] = []
    limit = store.disk.min_file_size
    for row in rows:
        (inline if _HAS_UPSERT and len(row[1]) < limit else other).append(row)
    with store.transact(retry=True):
        if inline:
            with_files = _keys_with_files(store, [row[0] for row in inline])
            if with_files:
                other += [row for row in inline if row[0] in with_files]
                inline = [row for row in inline if row[0] not in with_files]
            # Many rows per statement, not executemany: each statement releases and retakes
            # the GIL once, and on a busy event loop every retake waits for the loop.
            for start in range(0, len(inline), ROWS_PER_INSERT):
                chunk = inline[start : start + ROWS_PER_INSERT]
                params: list[object] = []
                for key, body, tag, expire in chunk:
                    params += (key, now, expire, now, tag, MODE_RAW, sqlite3.Binary(body))
                store._sql(_UPSERT.format(rows=",".join([_ROW] * len(chunk))), params)
        for key, body, tag, expire in other:
            # Cache.set takes seconds from now and deletes a replaced value file.
            store.set(key, body, expire=None if expire is None else expire - now, tag=tag)


def _keys_with_files(store: diskcache.Cache, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk, marks in _in_chunks(keys):
        rows = store._sql(
            f"SELECT key FROM Cache WHERE raw = 1 AND filename IS NOT NULL AND key IN ({marks})",
            chunk,
        ).fetchall()
        found.update(row[0] for row in rows)
    return found


def _in_chunks(keys: list[str]) -> Iterator[tuple[list[str], str]]:
    """``keys`` in slices one statement may bind, each with its ``?,?,...`` placeholders."""
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        yield chunk, ",".join("?" * len(chunk))
