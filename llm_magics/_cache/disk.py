"""What the response cache will read from disk: JSON bytes, and nothing diskcache would unpickle.

:class:`JSONDisk` refuses to pickle on write and to unpickle on read: diskcache 5.6.3 unpickles
any row whose mode column says pickle (CVE-2025-69872), so a row planted by someone who could
write the directory would run code. Here such a row is a miss (:class:`RefusedRow`), reported
once per directory in the log, and never executed; the fresh answer then overwrites it. Value
files are only read from inside the cache directory.

Thread and process safety: the refusal counts per directory are guarded by a lock and are
per process; a JSONDisk holds no state of its own beyond diskcache's.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import diskcache
from diskcache.core import MODE_BINARY, MODE_RAW, UNKNOWN

from .._core.types import Response
from .codec import NotAResponse, decode_response

__all__ = ["JSONDisk", "RefusedRow", "refuse", "refused_count"]

# The store's logger: what is refused is reported as the cache's own news.
log = logging.getLogger("llm_magics._cache.store")


class RefusedRow(OSError):
    """A cache row that is not plain JSON bytes. An OSError, so diskcache treats it as a
    miss (as it does a value file deleted under it)."""


_refused_lock = threading.Lock()
_refused: dict[str, int] = {}


def refuse(directory: str, why: str) -> RefusedRow:
    """Count a refused row of ``directory`` (logged on the first one) and return the error."""
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


def decode_stored(data: Any, where: str) -> Response | None:
    """A stored answer from its JSON bytes; anything else is refused (counted under
    ``where``, logged once) and None, never executed."""
    if not isinstance(data, bytes):
        refuse(where, f"a {type(data).__name__} value, not JSON bytes")
        return None
    try:
        return decode_response(data)
    except NotAResponse:
        refuse(where, "a value that is not a cached response")
        return None


def decode_found(bodies: Mapping[str, Any], keys: Sequence[str], where: str) -> dict[str, Response]:
    """The answers among ``keys`` whose stored bytes are in ``bodies``."""
    answers: dict[str, Response] = {}
    for key in keys:
        data = bodies.get(key)
        response = decode_stored(data, where) if data is not None else None
        if response is not None:
            answers[key] = response
    return answers


def refused_count(directory: str) -> int:
    """How many rows of ``directory`` this process has refused."""
    return _refused.get(directory, 0)


class JSONDisk(diskcache.Disk):
    """A diskcache Disk that stores bytes and strings only and never pickles or unpickles."""

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) not in (str, bytes):
            raise TypeError(f"cache keys are str or bytes; got {type(key).__name__}")
        return super().put(key)

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise refuse(self._directory, "a pickled key")
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
        raise refuse(self._directory, f"stored with diskcache mode {mode}, not JSON bytes")

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
            raise refuse(self._directory, "a value file outside the cache directory")
        return os.path.relpath(full, root)
