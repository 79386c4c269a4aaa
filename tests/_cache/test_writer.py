"""The cache's batch writer: answers are readable at once, reach the disk in batches (when a
batch is full, or a short window after its first answer), and a flush does not wait for the
window."""

from __future__ import annotations

import time
from pathlib import Path

import diskcache
import pytest

from llm_magics._cache import writer as _cache_writer
from llm_magics._cache.store import JSONDisk
from llm_magics._cache.writer import BATCH_ROWS, BatchWriter


@pytest.fixture
def store(tmp_path: Path) -> diskcache.Cache:
    cache = diskcache.Cache(str(tmp_path / "c"), disk=JSONDisk, tag_index=True, cull_limit=0)
    yield cache
    cache.close()


@pytest.fixture
def long_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """A window no test waits out: whatever reaches the disk got there another way."""
    monkeypatch.setattr(_cache_writer, "BATCH_WINDOW", 60.0)


def on_disk(store: diskcache.Cache) -> int:
    return len(store)


def wait_until(condition: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_a_pending_answer_is_readable_before_it_reaches_the_disk(
    store: diskcache.Cache, long_window: None
) -> None:
    writer = BatchWriter(store, ttl=None, size_limit=2**30)
    writer.put("k", b'"body"', "p:m")
    assert writer.pending("k") == b'"body"'
    assert on_disk(store) == 0
    assert writer.flush(5)
    assert writer.pending("k") is None and store.get("k") == b'"body"'


def test_a_flush_commits_at_once_instead_of_waiting_for_the_window(
    store: diskcache.Cache, long_window: None
) -> None:
    writer = BatchWriter(store, ttl=None, size_limit=2**30)
    writer.put("k", b"1", "p:m")
    started = time.monotonic()
    assert writer.flush(30)
    assert time.monotonic() - started < 30  # the 60 s window was not waited out
    assert on_disk(store) == 1 and writer.written == 1


def test_a_full_batch_is_committed_without_waiting_for_the_window(
    store: diskcache.Cache, long_window: None
) -> None:
    writer = BatchWriter(store, ttl=None, size_limit=2**30)
    for i in range(BATCH_ROWS):
        writer.put(f"k{i}", b"1", "p:m")
    assert wait_until(lambda: on_disk(store) == BATCH_ROWS)
    assert writer.written == BATCH_ROWS


def test_answers_that_arrive_together_share_a_commit(
    store: diskcache.Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits: list[int] = []
    writer = BatchWriter(store, ttl=None, size_limit=2**30)
    commit = writer._commit
    monkeypatch.setattr(
        writer, "_commit", lambda batch: (commits.append(len(batch)), commit(batch))
    )
    for i in range(50):
        writer.put(f"k{i}", b"1", "p:m")
    assert writer.flush(10)
    assert sum(commits) == 50 and len(commits) < 50
    assert on_disk(store) == 50


def test_the_size_limit_is_still_enforced_though_volume_is_checked_less_often(
    tmp_path: Path,
) -> None:
    limit = 2**17
    store = diskcache.Cache(str(tmp_path / "c"), disk=JSONDisk, cull_limit=0, size_limit=limit)
    writer = BatchWriter(store, ttl=None, size_limit=limit)
    body = b'"' + b"x" * 2000 + b'"'
    for i in range(400):  # 800 KB into a 128 KB cache, in several batches
        writer.put(f"k{i}", body, "p:m")
        if i % 50 == 49:
            assert writer.flush(10)
    assert 0 < len(store) < 400
    assert store.get("k399") == body and store.get("k0") is None  # oldest went first
    store.close()
