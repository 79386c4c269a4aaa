"""The response cache: rerunning a cell costs nothing and answers the same.

Answers are stored with diskcache in ``LLM_MAGICS_CACHE_DIR`` (default: the platform's user
cache directory, e.g. ``~/.cache/llm_magics``), created owner-only (0o700).

What is stored: JSON bytes only. :class:`JSONDisk` refuses to pickle on write and to unpickle
on read: diskcache 5.6.3 unpickles any row whose mode column says pickle (CVE-2025-69872), so
a row planted by someone who could write the directory would run code. Here such a row is a
miss, reported once in the log, and never executed; the fresh answer then overwrites it.
Value files are only read from inside the cache directory.

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

Limits: ``LLM_MAGICS_CACHE_SIZE`` (bytes, or ``500MB``, ``2GB``; default 1GB, oldest entries
evicted first) and ``LLM_MAGICS_CACHE_TTL`` (seconds, or ``30m``, ``12h``, ``7d``; default:
no expiry), or the ``size_limit=`` / ``ttl=`` arguments of :class:`ResponseCache`.

A value is a flat JSON array (:mod:`llm_magics._cache.codec`) whose ``raw`` is decoded only
when ``response.raw`` is read; rows of an older format version are quiet misses. Lookups,
batch lookups (:meth:`ResponseCache.get_many`) and batched writes are plain SQL on
diskcache's own table (:mod:`llm_magics._cache.sql`); management (eviction, expiry, clear)
is diskcache's.

Thread and process safety: one directory may be shared by threads and by processes (two
kernels): diskcache keeps each entry in SQLite (WAL) and writes values atomically. Writes go
through one writer thread per cache that commits up to 256 answers as one transaction: an
answer is readable in this process at once and on disk within 100 ms (a kernel that is killed
outright may lose the answers of its last 100 ms; a rerun asks for them again); pending answers are flushed before ``stats``/``clear`` and at interpreter exit
(a Ctrl-C does not stop the writer). Fork safety: a forked child starts its own writer. A failing
cache never fails a call: errors are logged and the call goes to the provider.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import stat
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import diskcache
from diskcache.core import MODE_BINARY, MODE_RAW, UNKNOWN

from .._core.errors import ConfigError
from .._core.fmt import markdown_table, size
from .._core.types import (
    ChatRequest,
    Response,
)
from ..providers.catalog import undated
from .codec import (
    FORMAT_VERSION,
    NotAResponse,
    _canonical,
    decode_response,
    encode_response,
    request_digest,
)
from .readonly import NoWriter, ReadOnlyStore
from .sql import FALLBACK, read_many, read_one
from .writer import BatchWriter, cache_clock

if TYPE_CHECKING:
    from ..providers.base import Provider

__all__ = [
    "CacheStats",
    "JSONDisk",
    "ResponseCache",
    "default_cache",
    "default_directory",
]

log = logging.getLogger("llm_magics._cache.store")

DEFAULT_SIZE_LIMIT = 2**30
ENV_DIR = "LLM_MAGICS_CACHE_DIR"
ENV_SIZE = "LLM_MAGICS_CACHE_SIZE"
ENV_TTL = "LLM_MAGICS_CACHE_TTL"


class RefusedRow(OSError):
    """A cache row that is not plain JSON bytes. An OSError, so diskcache treats it as a
    miss (as it does a value file deleted under it)."""


_refused_lock = threading.Lock()
_refused: dict[str, int] = {}


def _refuse(directory: str, why: str) -> RefusedRow:
    with _refused_lock:
        count = _refused.get(directory, 0)
        _refused[directory] = count + 1
    if count == 0:
        log.warning(
            "llm_magics refused a response-cache row in %s (%s): it was not executed and is "
            "treated as a miss. Someone or something wrote it into the cache directory; if "
            "you did not expect that, delete the directory.",
            directory,
            why,
        )
    return RefusedRow(why)


class JSONDisk(diskcache.Disk):
    """A diskcache Disk that stores bytes and strings only and never pickles or unpickles."""

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) not in (str, bytes):
            raise TypeError(f"cache keys are str or bytes; got {type(key).__name__}")
        return super().put(key)

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise _refuse(self._directory, "a pickled key")
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> Any:
        if type(value) is not bytes:
            raise TypeError(f"the response cache stores JSON bytes; got {type(value).__name__}")
        return super().store(value, False, key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == MODE_RAW and isinstance(value, bytes | memoryview):
            return bytes(value)
        if mode == MODE_BINARY and filename and not read:
            return super().fetch(mode, self._inside(filename), value, False)
        raise _refuse(self._directory, f"stored with diskcache mode {mode}, not JSON bytes")

    def remove(self, file_path: str) -> None:
        try:
            inside = self._inside(file_path)
        except RefusedRow:
            return  # the row goes; the file it named stays untouched
        super().remove(inside)

    def _inside(self, filename: str) -> str:
        # A tampered row could name any file on disk (to read it, or to have it deleted on
        # eviction); value files only ever live under the cache directory.
        root = os.path.realpath(self._directory)
        full = os.path.realpath(os.path.join(root, filename))
        if os.path.commonpath([root, full]) != root or full == root:
            raise _refuse(self._directory, "a value file outside the cache directory")
        return os.path.relpath(full, root)


@dataclass
class CacheStats:
    """``lm.cache_stats()``: what is in the cache and how this kernel used it."""

    directory: str
    entries: int
    size_bytes: int
    size_limit: int
    ttl: float | None
    hits: int
    misses: int
    writes: int
    refused: int
    read_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _lines(self) -> list[tuple[str, str]]:
        lookups = self.hits + self.misses
        rate = f" ({self.hits / lookups:.0%} hit rate)" if lookups else ""
        return [
            (
                "directory",
                self.directory + (" (read-only: answers are not stored)" if self.read_only else ""),
            ),
            ("entries", f"{self.entries:,}"),
            ("size", f"{size(self.size_bytes)} of {size(self.size_limit)}"),
            ("expiry", f"after {self.ttl:g} s" if self.ttl else "never"),
            ("this session", f"{self.hits} hits, {self.misses} misses{rate}, {self.writes} writes"),
            *([("refused rows", str(self.refused))] if self.refused else []),
        ]

    def __str__(self) -> str:
        return "\n".join(f"{k:>13}: {v}" for k, v in self._lines())

    def _repr_markdown_(self) -> str:
        return markdown_table(["response cache", ""], self._lines())


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
        self.size_limit = size_limit if size_limit is not None else _size_from_env()
        self.ttl = ttl if ttl is not None else _ttl_from_env()
        if self.ttl is not None and self.ttl <= 0:
            self.ttl = None
        self.directory = path.expanduser()
        #: True when the directory cannot be written: answers are read from it, never stored.
        self.read_only = False
        self._store: Any
        self._writer: BatchWriter | NoWriter = NoWriter()
        try:
            self.directory = _private_directory(self.directory)
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
            self._store = ReadOnlyStore(self.directory, _refuse)
            _warn_read_only(self.directory, exc)
        else:
            self._writer = BatchWriter(self._store, ttl=self.ttl, size_limit=self.size_limit)
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.directory)!r})"

    # --- the client protocol -------------------------------------------------------------

    def key_for(self, provider: Provider, request: ChatRequest) -> str:
        """Hex SHA-256 of everything that can change the answer (never the API key)."""
        fingerprint = request.fingerprint()
        for name in ("temperature", "top_p"):
            value = fingerprint.get(name)
            if isinstance(value, float) and value.is_integer():
                fingerprint[name] = int(value)
        if fingerprint.get("extra"):
            fingerprint["extra"] = _canonical(fingerprint["extra"])
        payload = [
            FORMAT_VERSION,
            provider.name,
            getattr(provider, "protocol", ""),
            provider.base_url.rstrip("/").lower(),
            fingerprint,
        ]
        return request_digest(payload)

    def get(self, key: str) -> Response | None:
        data = self._writer.pending(key)
        if data is None:
            data = self._read(key)
        response = self._decode(data) if data is not None else None
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
        answers: dict[str, Response] = {}
        for key in keys:
            data = bodies.get(key)
            response = self._decode(data) if data is not None else None
            if response is not None:
                answers[key] = response
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
            refused=_refused.get(str(self.directory), 0),
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
            if _tag_matches(tag, model):
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

    def _decode(self, data: Any) -> Response | None:
        if not isinstance(data, bytes):
            _refuse(str(self.directory), f"a {type(data).__name__} value, not JSON bytes")
            return None
        try:
            return decode_response(data)
        except NotAResponse:
            _refuse(str(self.directory), "a value that is not a cached response")
            return None


_read_only_warned: set[str] = set()


def _warn_read_only(directory: Path, exc: BaseException) -> None:
    """Once per directory and process: the cache can be read but not written."""
    with _refused_lock:
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


def _tag_matches(tag: str, wanted: str) -> bool:
    if ":" not in wanted:
        return tag.startswith(wanted + ":")
    if tag == wanted:
        return True
    provider, _, model = tag.partition(":")
    return f"{provider}:{undated(model)}" == wanted


# --- configuration -----------------------------------------------------------------------


def default_directory() -> Path:
    """``LLM_MAGICS_CACHE_DIR``, else the platform's user cache directory."""
    configured = os.environ.get(ENV_DIR, "").strip()
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("llm_magics", appauthor=False))


def _private_directory(path: Path) -> Path:
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


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _size_from_env() -> int:
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


def _ttl_from_env() -> float | None:
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


# --- the kernel's cache ------------------------------------------------------------------

_defaults_lock = threading.Lock()
_defaults: dict[tuple[str, int, float | None], ResponseCache] = {}


def default_cache() -> ResponseCache:
    """The cache of the current ``LLM_MAGICS_CACHE_DIR`` (and size/TTL settings), opened on
    first use and shared after that."""
    directory = default_directory()
    settings = (str(directory), _size_from_env(), _ttl_from_env())
    with _defaults_lock:
        found = _defaults.get(settings)
        if found is None:
            found = _defaults[settings] = ResponseCache(
                directory, size_limit=settings[1], ttl=settings[2]
            )
        return found
