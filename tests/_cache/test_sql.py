"""The cache's SQL fast paths read and write diskcache's own rows: diskcache reads what they
write and they read what diskcache writes, its count and size metadata stay right, and
anything that is not a plain inline value (a value file, a planted pickle) goes back through
diskcache and JSONDisk."""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

import diskcache
import pytest

from llm_magics._cache.sql import FALLBACK, read_many, read_one, write_many
from llm_magics._cache.store import JSONDisk

NOW = 1_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> diskcache.Cache:
    cache = diskcache.Cache(str(tmp_path / "c"), disk=JSONDisk, tag_index=True, cull_limit=0)
    yield cache
    cache.close()


def metadata(store: diskcache.Cache) -> tuple[int, int]:
    """diskcache's own count and size counters, which its triggers maintain."""
    return store.reset("count"), store.reset("size")


def test_rows_written_in_one_batch_are_read_back_by_diskcache(store: diskcache.Cache) -> None:
    write_many(store, [(f"k{i}", f'["v{i}"]'.encode(), "p:m", None) for i in range(5)], NOW)
    assert [store.get(f"k{i}") for i in range(5)] == [f'["v{i}"]'.encode() for i in range(5)]
    assert store.get("k0", tag=True) == (b'["v0"]', "p:m")
    assert len(store) == 5 and metadata(store) == (5, 0)


def test_rows_written_by_diskcache_are_read_by_the_fast_paths(store: diskcache.Cache) -> None:
    store.set("a", b'"A"')
    store.set("b", b'"B"')
    assert read_one(store, "a", NOW) == b'"A"'
    assert read_one(store, "absent", NOW) is None
    found, fallback = read_many(store, ["a", "b", "absent", "a"], NOW)
    assert found == {"a": b'"A"', "b": b'"B"'} and fallback == []


def test_rewriting_a_key_replaces_it_and_keeps_the_count(store: diskcache.Cache) -> None:
    write_many(store, [("k", b'"old"', "p:m", None)], NOW)
    write_many(store, [("k", b'"new"', "p:m2", None), ("k2", b'"x"', "p:m", None)], NOW + 1)
    assert store.get("k", tag=True) == (b'"new"', "p:m2")
    assert len(store) == 2 and metadata(store) == (2, 0)


def test_expiry_times_are_absolute_and_expired_rows_are_misses(store: diskcache.Cache) -> None:
    write_many(store, [("short", b"1", "t", NOW + 10), ("long", b"2", "t", None)], NOW)
    assert read_one(store, "short", NOW + 5) == b"1"
    assert read_one(store, "short", NOW + 11) is None
    assert read_many(store, ["short", "long"], NOW + 11) == ({"long": b"2"}, [])
    row = store._sql("SELECT expire_time FROM Cache WHERE key = 'short'").fetchone()
    assert row == (NOW + 10,)


def test_a_large_answer_goes_to_a_value_file_through_diskcache(store: diskcache.Cache) -> None:
    big = b'"' + b"x" * store.disk.min_file_size + b'"'
    write_many(store, [("big", big, "p:m", None)], NOW)
    (filename,) = store._sql("SELECT filename FROM Cache WHERE key = 'big'").fetchone()
    assert filename is not None
    assert read_one(store, "big", NOW) is FALLBACK
    assert read_many(store, ["big"], NOW) == ({}, ["big"])
    assert store.get("big") == big
    assert metadata(store) == (1, len(big))


def test_replacing_a_value_file_with_a_small_answer_deletes_the_file(
    store: diskcache.Cache, tmp_path: Path
) -> None:
    big = b'"' + b"x" * store.disk.min_file_size + b'"'
    write_many(store, [("k", big, "p:m", None)], NOW)
    (filename,) = store._sql("SELECT filename FROM Cache WHERE key = 'k'").fetchone()
    value_file = Path(store.directory) / filename
    assert value_file.exists()
    write_many(store, [("k", b'"small"', "p:m", None)], NOW + 1)
    assert not value_file.exists()
    assert store.get("k") == b'"small"' and metadata(store) == (1, 0)


def test_a_pickle_row_is_left_to_diskcache_which_refuses_it(
    store: diskcache.Cache, tmp_path: Path
) -> None:
    sentinel = tmp_path / "executed"
    payload = pickle.dumps(Exploit(str(sentinel)))
    store._sql(
        "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count, tag,"
        " size, mode, filename, value) VALUES ('planted', 1, 0, NULL, 0, 0, NULL, 0, 4, NULL, ?)",
        (sqlite3.Binary(payload),),
    )
    assert read_one(store, "planted", NOW) is FALLBACK
    assert read_many(store, ["planted"], NOW) == ({}, ["planted"])
    assert store.get("planted") is None  # JSONDisk: a miss
    assert not sentinel.exists()


def test_read_many_takes_more_keys_than_one_statement_may_bind(store: diskcache.Cache) -> None:
    write_many(store, [(f"k{i}", b"1", "t", None) for i in range(1200)], NOW)
    found, _ = read_many(store, [f"k{i}" for i in range(1300)], NOW)
    assert len(found) == 1200 and len(store) == 1200


class Exploit:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))
