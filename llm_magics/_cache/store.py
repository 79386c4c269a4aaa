"""The response cache: rerunning a cell costs nothing and answers the same.

Answers are stored with diskcache in ``LLM_MAGICS_CACHE_DIR`` (see
:mod:`llm_magics._cache.config` for the directory, size and expiry settings). What is stored:
JSON bytes only; :class:`~llm_magics._cache.disk.JSONDisk` never pickles or unpickles, so a
planted row is a miss, never executed (CVE-2025-69872).

The key is the SHA-256 of the canonical JSON of the provider name and protocol, its base URL,
and :meth:`~llm_magics._core.types.ChatRequest.fingerprint`: model, messages (media by content
hash), system prompt, every generation parameter, tools, schema and extra fields. The API key
is never part of it: the same question asked with another key of the same provider is the
same answer. Numbers are normalised (``temperature=1`` and ``1.0`` are one key).

Requests with ``temperature > 0`` are cached too, on purpose: rerunning a notebook should give
the answer it gave before. Ask for a new one with ``cache="refresh"`` (recompute and
overwrite), per call ``cache=False``, per cell ``--no-cache``, or per client
``lm.client(..., cache=False)``. A streamed answer is stored once complete, and a cache hit
replays as a stream.

Limits: ``LLM_MAGICS_CACHE_SIZE`` (default 1GB, oldest entries evicted first) and
``LLM_MAGICS_CACHE_TTL`` (default: no expiry), or the ``size_limit=`` / ``ttl=`` arguments of
:class:`ResponseCache`.

A value is a flat JSON array (:mod:`llm_magics._cache.codec`) whose ``raw`` is decoded only
when ``response.raw`` is read; rows of an older format version are quiet misses. Lookups,
batch lookups (:meth:`ResponseCache.get_many`) and batched writes are plain SQL on
diskcache's own table (:mod:`llm_magics._cache.sql`); management (eviction, expiry, clear)
is diskcache's.

Thread and process safety: one directory may be shared by threads and by processes (two
kernels): diskcache keeps each entry in SQLite (WAL) and writes values atomically. Writes go
through one writer thread per cache that commits up to 256 answers as one transaction: an
answer is readable in this process at once and on disk within 100 ms (a kernel that is killed
outright may lose the answers of its last 100 ms; a rerun asks for them again); pending
answers are flushed before ``stats``/``clear`` and at interpreter exit (a Ctrl-C does not stop
the writer). Fork safety: a forked child starts its own writer. A failing cache never fails a
call: errors are logged and the call goes to the provider.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import diskcache

from .._core.errors import ConfigError
from .._core.types import (
    ChatRequest,
    Response,
)
from .codec import (
    encode_response,
)
from .config import (
    ENV_DIR,
    default_directory,
    private_directory,
    size_from_env,
    ttl_from_env,
    warn_read_only,
)
from .disk import JSONDisk, decode_found, decode_stored, refuse, refused_count
from .keys import response_key, tag_matches
from .readonly import NoWriter, ReadOnlyStore
from .redis_store import ENV_URL, RedisCache, is_redis_url
from .sql import FALLBACK, read_many, read_one
from .stats import CacheStats
from .writer import BatchWriter, cache_clock

if TYPE_CHECKING:
    from ..providers.base import Provider

__all__ = [
    "CacheStats",
    "JSONDisk",
    "ResponseCache",
    "default_cache",
    "default_directory",
    "open_cache",
    "response_key",
]

log = logging.getLogger("llm_magics._cache.store")


class ResponseCache:
    """A JSON-only diskcache of Responses (the protocol of ``_client.ResponseCache``)."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        size_limit: int | None = None,
        ttl: float | None = None,
    ) -> None:
        path = Path(directory) if directory is not None else default_directory()
        self.size_limit = size_limit if size_limit is not None else size_from_env()
        self.ttl = ttl if ttl is not None else ttl_from_env()
        if self.ttl is not None and self.ttl <= 0:
            self.ttl = None
        self.directory = path.expanduser()
        #: True when the directory cannot be written: answers are read from it, never stored.
        self.read_only = False
        self._store: Any
        self._writer: BatchWriter | NoWriter = NoWriter()
        try:
            self.directory = private_directory(self.directory)
            self._store = diskcache.Cache(
                str(self.directory),
                disk=JSONDisk,
                size_limit=self.size_limit,
                eviction_policy="least-recently-stored",
                tag_index=True,
                # Culling inside a batched transaction over-evicts (freed pages only shrink
                # the file at commit), so the writer culls after each commit instead.
                cull_limit=0,
            )
        except (sqlite3.Error, diskcache.Timeout, OSError, ConfigError) as exc:
            # A cache is an optimisation: one that cannot be written must not fail a call.
            self.read_only = True
            self._store = ReadOnlyStore(self.directory, refuse)
            warn_read_only(self.directory, exc)
        else:
            self._writer = BatchWriter(self._store, ttl=self.ttl, size_limit=self.size_limit)
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.directory)!r})"

    # --- the client protocol -------------------------------------------------------------

    def key_for(self, provider: Provider, request: ChatRequest) -> str:
        """Hex SHA-256 of everything that can change the answer (never the API key)."""
        return response_key(provider, request)

    def get(self, key: str) -> Response | None:
        data = self._writer.pending(key)
        if data is None:
            data = self._read(key)
        response = decode_stored(data, str(self.directory)) if data is not None else None
        with self._lock:
            if response is None:
                self.misses += 1
            else:
                self.hits += 1
        return response

    def get_many(self, keys: Sequence[str]) -> dict[str, Response]:
        """The cached answers among ``keys`` (one query per 500 keys), each its own object;
        a key missing from the result is a miss."""
        bodies: dict[str, bytes] = {}
        try:
            found, fallback = read_many(self._store, keys, cache_clock())
            bodies.update(found)
            for key in fallback:
                data = self._store.get(key, retry=True)
                if data is not None:
                    bodies[key] = data
        except (sqlite3.Error, diskcache.Timeout, OSError) as exc:
            log.warning("response cache read failed (%s); asking the provider instead", exc)
        for key in keys:
            data = self._writer.pending(key)
            if data is not None:
                bodies[key] = data
        answers = decode_found(bodies, keys, str(self.directory))
        with self._lock:
            self.hits += len(answers)
            self.misses += len(keys) - len(answers)
        return answers

    def _read(self, key: str) -> Any:
        try:
            try:
                data = read_one(self._store, key, cache_clock())
            except sqlite3.OperationalError:  # e.g. locked: diskcache retries
                data = FALLBACK
            if data is FALLBACK:
                return self._store.get(key, retry=True)
            return data
        except (sqlite3.Error, diskcache.Timeout, OSError) as exc:
            log.warning("response cache read failed (%s); asking the provider instead", exc)
            return None

    def put(self, key: str, response: Response) -> None:
        """Store an answer. It is readable through :meth:`get` at once and reaches the disk
        within milliseconds (a batch commit on the writer thread); :meth:`flush` waits."""
        if self.read_only:
            return  # nothing to encode: the user was told once
        body = self._encode(response)
        if body is None:
            return
        self._writer.put(key, body, f"{response.provider}:{response.model}")

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every answer put so far is on disk; False after ``timeout``."""
        return self._writer.flush(timeout)

    @property
    def writes(self) -> int:
        return self._writer.written

    # --- management ----------------------------------------------------------------------

    def stats(self) -> CacheStats:
        self.flush()
        with self._lock:
            hits, misses, writes = self.hits, self.misses, self.writes
        return CacheStats(
            directory=str(self.directory),
            entries=len(self._store),
            size_bytes=self._store.volume(),
            size_limit=self.size_limit,
            ttl=self.ttl,
            hits=hits,
            misses=misses,
            writes=writes,
            refused=refused_count(str(self.directory)),
            read_only=self.read_only,
        )

    def clear(self, model: str | None = None, *, expired: bool = False) -> int:
        """Remove entries; returns how many. ``model``: only that ``provider:model`` (dated
        snapshots included) or every model of ``provider``; ``expired``: only expired ones."""
        if self.read_only:
            raise ConfigError(
                f"the response cache {self.directory} is read-only, so nothing can be removed "
                f"from it. Set {ENV_DIR} to a writable directory."
            )
        self.flush()
        if expired:
            return int(self._store.expire(retry=True))
        if model is None:
            return int(self._store.clear(retry=True))
        removed = 0
        for tag in self._tags():
            if tag_matches(tag, model):
                removed += int(self._store.evict(tag, retry=True))
        return removed

    def close(self) -> None:
        self.flush()
        self._store.close()

    def _tags(self) -> list[str]:
        rows = self._store._sql("SELECT DISTINCT tag FROM Cache WHERE tag IS NOT NULL")
        return [row[0] for row in rows.fetchall() if isinstance(row[0], str)]

    # --- encoding ------------------------------------------------------------------------

    def _encode(self, response: Response) -> bytes | None:
        try:
            return encode_response(response)
        except (TypeError, ValueError) as exc:
            log.warning("response not cached: it is not JSON-serialisable (%s)", exc)
            return None


# --- the kernel's cache ------------------------------------------------------------------

_defaults_lock = threading.Lock()
_defaults: dict[tuple[str, int, float | None], ResponseCache | RedisCache] = {}


def default_cache() -> ResponseCache | RedisCache:
    """The kernel's cache: Redis at ``LLM_MAGICS_CACHE_URL`` when it is set, else the disk
    cache of the current ``LLM_MAGICS_CACHE_DIR`` (with the size/TTL settings); opened on
    first use and shared after that."""
    url = os.environ.get(ENV_URL, "").strip()
    where = url or str(default_directory())
    settings = (where, size_from_env(), ttl_from_env())
    with _defaults_lock:
        found = _defaults.get(settings)
        if found is None:
            found = _defaults[settings] = open_cache(where, size_limit=settings[1], ttl=settings[2])
        return found


def open_cache(
    where: str | os.PathLike[str], *, size_limit: int | None = None, ttl: float | None = None
) -> ResponseCache | RedisCache:
    """A response cache at ``where``: a ``redis://`` URL or a directory."""
    if is_redis_url(where):
        return RedisCache(str(where), size_limit=size_limit, ttl=ttl)
    return ResponseCache(where, size_limit=size_limit, ttl=ttl)
