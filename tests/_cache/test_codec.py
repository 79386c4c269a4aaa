"""The cache's value format: an answer round-trips with ``raw`` decoded only when read, a
``raw`` that is not JSON is dropped but the answer kept, a row of the previous format is a
quiet miss and anything else is refused; batch lookups see disk and the writer queue."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_magics._cache.store import ResponseCache
from llm_magics._core.types import Response, ToolCall, Usage


def test_a_cached_answer_round_trips_with_raw_decoded_on_first_read(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c")
    original = Response(
        "text", "m", "p", Usage(3, 4, 1, 0), "stop",
        [ToolCall("c1", "f", {"x": 1}, '{"x": 1}')], raw={"id": "r1", "n": [1, 2]}, cost=0.5,
    )  # fmt: skip
    cache.put("key", original)
    cache.flush()
    cache._writer._pending.clear()
    again = cache.get("key")
    assert again is not None
    assert "_raw_json" in again.__dict__  # not decoded yet
    assert again.raw == {"id": "r1", "n": [1, 2]}
    assert again == original
    again.raw = {"replaced": True}
    assert again.raw == {"replaced": True}
    cache.close()


def test_an_answer_whose_raw_is_not_json_is_cached_without_raw(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c")
    cache.put("key", Response("text", "m", "p", raw=object()))
    cache.flush()
    got = cache.get("key")
    assert got is not None and got.text == "text" and got.raw is None
    cache.close()


def test_a_row_in_the_previous_format_is_a_quiet_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = ResponseCache(tmp_path / "c")
    cache._store.set("old", b'{"v":1,"stored":0,"response":{"text":"t"}}')
    cache._store.set("junk", b'"a string"')
    assert cache.get("old") is None
    assert not caplog.records
    assert cache.get("junk") is None
    assert "refused" in caplog.text
    cache.close()


def test_get_many_returns_hits_from_disk_and_from_the_writer_queue(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c")
    cache.put("on-disk", Response("a", "m", "p"))
    cache.flush()
    cache.put("queued", Response("b", "m", "p"))
    hits = cache.get_many(["on-disk", "queued", "absent"])
    assert {k: r.text for k, r in hits.items()} == {"on-disk": "a", "queued": "b"}
    assert (cache.hits, cache.misses) == (2, 1)
    cache.close()
