"""The response cache in Redis: one cache for the kernels of a team and the workers of a Ray
job (``LLM_MAGICS_CACHE_URL=redis://host:6379/0``, or ``lm.client(..., cache="redis://...")``).

It holds what the disk cache holds, under the same keys
(:func:`~llm_magics._cache.store.response_key`) and as the same JSON bytes
(:mod:`llm_magics._cache.codec`), so an answer cached by one kernel or worker is a hit for
every other. Nothing in it is ever unpickled: redis-py hands back bytes, and they go through
:func:`~llm_magics._cache.codec.decode_response` only; a value that is not a cached response
is refused (counted and logged, a miss), never executed.

Layout, under the prefix ``llm_magics:`` of the URL's database:

* ``llm_magics:r:<key>``: the answer's JSON bytes, with an expiry when a TTL is set;
* ``llm_magics:index``: a sorted set of keys by the time they were stored, the order of
  eviction (least recently stored first, as on disk);
* ``llm_magics:meta``: a hash of key -> ``"<bytes>|<provider:model>"`` (sizes and tags);
* ``llm_magics:bytes``: the total size of the stored answers.

Limits as for the disk cache: ``LLM_MAGICS_CACHE_SIZE`` (default 1GB; past it the oldest
answers are evicted, atomically with the write that overflowed) and ``LLM_MAGICS_CACHE_TTL``
(default: no expiry), or ``size_limit=`` / ``ttl=``. Writes are Lua scripts, so two writers
never disagree about the size; a Redis Cluster is not supported (the scripts touch keys of
several slots).

Thread, process and fork safety: any thread may call any method. Answers are written by one
writer thread per cache, pipelined up to 256 per round trip, so a fan-out's event loop never
waits for a write; an answer is readable in this process at once and in Redis within
milliseconds; :meth:`RedisCache.flush` waits, and pending answers are flushed at exit.
Processes share the server, not state; redis-py's pool reconnects in a forked child and the
child starts its own writer. A Redis that is down never fails a call: the lookup is a miss,
the write is dropped, and both are logged once.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._core.errors import ConfigError
from .._core.types import ChatRequest, Response
from .codec import encode_response
from .config import size_from_env, ttl_from_env
from .disk import decode_found, refused_count
from .keys import response_key, tag_matches
from .stats import CacheStats

if TYPE_CHECKING:
    from ..providers.base import Provider

__all__ = ["ENV_URL", "RedisCache", "is_redis_url", "redacted_url"]

log = logging.getLogger("llm_magics._cache.store")

ENV_URL = "LLM_MAGICS_CACHE_URL"
PREFIX = "llm_magics:"
_BATCH = 256
_CHUNK = 500

# KEYS: index, meta, bytes. ARGV: prefix, size limit, then per answer: key, body, ttl ms
# (0: none), stored-at ms, tag. Returns how many answers were evicted.
_PUT = """
local prefix, limit = ARGV[1], tonumber(ARGV[2])
local total = tonumber(redis.call('GET', KEYS[3]) or '0')
for i = 3, #ARGV, 5 do
  local key, body, ttl = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local old = redis.call('HGET', KEYS[2], key)
  if old then total = total - tonumber(string.match(old, '^(%d+)')) end
  if ttl > 0 then
    redis.call('SET', prefix .. 'r:' .. key, body, 'PX', ttl)
  else
    redis.call('SET', prefix .. 'r:' .. key, body)
  end
  redis.call('HSET', KEYS[2], key, string.len(body) .. '|' .. ARGV[i + 4])
  redis.call('ZADD', KEYS[1], ARGV[i + 3], key)
  total = total + string.len(body)
end
local evicted = 0
while total > limit do
  local oldest = redis.call('ZPOPMIN', KEYS[1])
  if #oldest == 0 then break end
  local meta = redis.call('HGET', KEYS[2], oldest[1])
  if meta then
    total = total - tonumber(string.match(meta, '^(%d+)'))
    redis.call('HDEL', KEYS[2], oldest[1])
  end
  redis.call('DEL', prefix .. 'r:' .. oldest[1])
  evicted = evicted + 1
end
redis.call('SET', KEYS[3], math.max(total, 0))
return evicted
"""

# KEYS: index, meta, bytes. ARGV: prefix, only_expired (1/0), then keys. Forgets each key
# (only when its answer has expired, with only_expired); returns how many.
_FORGET = """
local prefix, only_expired = ARGV[1], ARGV[2] == '1'
local removed = 0
for i = 3, #ARGV do
  local key = ARGV[i]
  local live = redis.call('EXISTS', prefix .. 'r:' .. key) == 1
  if not (only_expired and live) then
    local meta = redis.call('HGET', KEYS[2], key)
    if meta then
      redis.call('DECRBY', KEYS[3], tonumber(string.match(meta, '^(%d+)')))
      redis.call('HDEL', KEYS[2], key)
    end
    redis.call('ZREM', KEYS[1], key)
    redis.call('DEL', prefix .. 'r:' .. key)
    if live or meta then removed = removed + 1 end
  end
end
return removed
"""


def is_redis_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("redis://", "rediss://", "unix://"))


def redacted_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe to print or log), even when the
    rest of it does not parse."""
    return _PASSWORD.sub(r"\1***@", url)


_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def _redis_module() -> Any:
    try:
        import redis
    except ImportError:
        raise ConfigError(
            "a redis:// response cache needs the redis package: pip install 'llm_magics[ray]' "
            f"(or pip install redis), or unset {ENV_URL} to use the disk cache"
        ) from None
    return redis


class RedisCache:
    """A JSON-only response cache in Redis (the protocol of ``_client.ResponseCache``, plus
    ``get_many``, ``stats``, ``clear``, ``flush`` and ``close`` as on disk)."""

    def __init__(
        self,
        url: str,
        *,
        size_limit: int | None = None,
        ttl: float | None = None,
        prefix: str = PREFIX,
    ) -> None:
        if not is_redis_url(url):
            raise ConfigError(
                f"a shared response cache is a redis://, rediss:// or unix:// URL; got "
                f"{redacted_url(str(url))!r}. Set {ENV_URL}=redis://host:6379/0"
            )
        redis = _redis_module()
        self.url = redacted_url(url)
        self._secret_url = url
        self.size_limit = size_limit if size_limit is not None else size_from_env()
        self.ttl = ttl if ttl is not None else ttl_from_env()
        if self.ttl is not None and self.ttl <= 0:
            self.ttl = None
        self.prefix = prefix
        self.read_only = False
        try:
            self._redis = redis.Redis.from_url(
                url, socket_timeout=5.0, socket_connect_timeout=5.0, health_check_interval=30
            )
        except ValueError as exc:
            raise ConfigError(f"{ENV_URL}={self.url!r} is not a Redis URL: {exc}") from None
        self._errors = (redis.RedisError, OSError)
        self._index, self._meta, self._bytes = (prefix + n for n in ("index", "meta", "bytes"))
        self._put_script = self._redis.register_script(_PUT)
        self._forget_script = self._redis.register_script(_FORGET)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pending: dict[str, tuple[bytes, str]] = {}
        self._writing: dict[str, tuple[bytes, str]] = {}
        self._thread: threading.Thread | None = None
        self._thread_pid: int | None = None
        self._warned = False
        self.hits = self.misses = self.writes = 0
        _open_caches.add(self)

    def __repr__(self) -> str:
        return f"RedisCache({self.url!r})"

    @property
    def secret_url(self) -> str:
        """The URL with its password: for the environment of a Ray worker, never to show."""
        return self._secret_url

    def __reduce__(self) -> Any:
        # A cache travels as its settings, never as a live connection; the URL (which may
        # hold a password) stays out of any pickle: a Ray worker reads LLM_MAGICS_CACHE_URL.
        raise TypeError(
            "a RedisCache is not picklable (its URL may hold a password); give workers "
            f"{ENV_URL} in their environment instead"
        )

    # --- the client protocol -------------------------------------------------------------

    def key_for(self, provider: Provider, request: ChatRequest) -> str:
        return response_key(provider, request)

    def get(self, key: str) -> Response | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, Response]:
        """The cached answers among ``keys`` (one MGET per 500 keys); a missing key is a
        miss."""
        bodies: dict[str, Any] = {}
        waiting = [k for k in keys if not self._pending_body(k, bodies)]
        try:
            for start in range(0, len(waiting), _CHUNK):
                chunk = waiting[start : start + _CHUNK]
                found = self._redis.mget([f"{self.prefix}r:{k}" for k in chunk])
                bodies.update((k, v) for k, v in zip(chunk, found, strict=True) if v is not None)
        except self._errors as exc:
            self._warn("read", exc)
        answers = decode_found(bodies, keys, self.url)
        with self._lock:
            self.hits += len(answers)
            self.misses += len(keys) - len(answers)
        return answers

    def _pending_body(self, key: str, into: dict[str, Any]) -> bool:
        with self._lock:
            found = self._pending.get(key) or self._writing.get(key)
        if found is not None:
            into[key] = found[0]
        return found is not None

    def put(self, key: str, response: Response) -> None:
        """Queue an answer for the writer thread; readable through :meth:`get` at once."""
        try:
            body = encode_response(response)
        except (TypeError, ValueError) as exc:
            log.warning("response not cached: it is not JSON-serialisable (%s)", exc)
            return
        with self._changed:
            self._pending[key] = (body, f"{response.provider}:{response.model}")
            self._start_writer()
            self._changed.notify()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every answer put so far is in Redis (or was dropped); False after
        ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._pending or self._writing:
                if self._thread is None or self._thread_pid != os.getpid():
                    self._start_writer()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.1))
        return True

    # --- the writer thread ---------------------------------------------------------------

    def _start_writer(self) -> None:
        """Start the writer (the lock is held); again in a forked child."""
        if self._thread is not None and self._thread_pid == os.getpid():
            return
        self._thread_pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="llm_magics-redis", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._pending:
                    self._changed.wait()
                batch = dict(list(self._pending.items())[:_BATCH])
                for key in batch:
                    del self._pending[key]
                self._writing.update(batch)
            try:
                self._write(batch)
            except self._errors as exc:
                self._warn("write", exc)
            finally:
                with self._changed:
                    for key in batch:
                        self._writing.pop(key, None)
                    self._changed.notify_all()

    def _write(self, batch: dict[str, tuple[bytes, str]]) -> None:
        ttl_ms = int(self.ttl * 1000) if self.ttl else 0
        now_ms = int(time.time() * 1000)
        args: list[Any] = [self.prefix, self.size_limit]
        for key, (body, tag) in batch.items():
            args += [key, body, ttl_ms, now_ms, tag]
        self._put_script(keys=[self._index, self._meta, self._bytes], args=args)
        with self._lock:
            self.writes += len(batch)

    # --- management ----------------------------------------------------------------------

    def stats(self) -> CacheStats:
        self.flush()
        if self.ttl is not None:
            self._forget(expired=True)
        try:
            entries = int(self._redis.zcard(self._index))
            size_bytes = int(self._redis.get(self._bytes) or 0)
        except self._errors as exc:
            self._warn("read", exc)
            entries = size_bytes = 0
        with self._lock:
            hits, misses, writes = self.hits, self.misses, self.writes
        return CacheStats(
            directory=self.url,
            entries=entries,
            size_bytes=size_bytes,
            size_limit=self.size_limit,
            ttl=self.ttl,
            hits=hits,
            misses=misses,
            writes=writes,
            refused=refused_count(self.url),
        )

    def clear(self, model: str | None = None, *, expired: bool = False) -> int:
        """Remove answers; returns how many. ``model``: only that ``provider:model`` or every
        model of ``provider``; ``expired``: only those past their TTL (their bookkeeping)."""
        self.flush()
        return self._forget(model=model, expired=expired)

    def _forget(self, *, model: str | None = None, expired: bool = False) -> int:
        removed = 0
        keys = [self._index, self._meta, self._bytes]
        for chunk in self._meta_chunks():
            wanted = [
                key
                for key, meta in chunk
                if model is None or tag_matches(meta.partition("|")[2], model)
            ]
            if wanted:
                args = [self.prefix, "1" if expired else "0", *wanted]
                removed += int(self._forget_script(keys=keys, args=args))
        return removed

    def _meta_chunks(self) -> Any:
        """The ``(key, meta)`` pairs of every stored answer, ``_CHUNK`` at a time."""
        chunk: list[tuple[str, str]] = []
        for key, meta in self._redis.hscan_iter(self._meta, count=_CHUNK):
            chunk.append((key.decode(), meta.decode()))
            if len(chunk) >= _CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def close(self) -> None:
        self.flush()
        self._redis.close()

    # --- failures -----------------------------------------------------------------------

    def _warn(self, what: str, exc: BaseException) -> None:
        if self._warned:
            return
        self._warned = True
        log.warning(
            "the Redis response cache %s failed a %s (%s); answers are asked of the provider "
            "and not stored until it is back. Check the server, or unset %s.",
            self.url,
            what,
            exc,
            ENV_URL,
        )


_open_caches: weakref.WeakSet[RedisCache] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for cache in list(_open_caches):
        cache.flush(timeout=5.0)
