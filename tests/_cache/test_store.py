"""The response cache: hits send nothing, every answer-changing parameter changes the key, the
API key never matters nor reaches the disk, processes share a directory safely, a tampered
pickle row is never executed, and size, expiry, refresh, streaming and management work.

Requests go to a real local HTTP server whose answers carry a counter, so a test can tell a
replayed answer from a fresh one and count what reached the server."""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import pickle
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llm_magics as lm
from llm_magics._cache.store import JSONDisk, ResponseCache, default_cache
from llm_magics._cache.writer import flush_all as _flush_all
from llm_magics._core.types import MediaPart, Response, Usage
from llm_magics.providers.openai_compat import OpenAICompatProvider
from tests.support.server import FakeOpenAIServer, answer_for

KEY_A = "sk-cache-test-key-A-0123456789"
KEY_B = "sk-cache-test-key-B-9876543210"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    counter = itertools.count(1)

    def numbered(body: dict[str, Any]) -> str:
        return f"{answer_for(body)} #{next(counter)}"

    with FakeOpenAIServer(answer=numbered) as srv:
        yield srv


@pytest.fixture
def srv(server: FakeOpenAIServer) -> FakeOpenAIServer:
    server.reset()
    return server


def client(srv: FakeOpenAIServer, model: str = "fake:m", **options: Any) -> lm.Client:
    lm.register("fake", srv.base_url, api_key=KEY_A)
    return lm.client(model, **options)


def cache_dir() -> Path:
    return Path(os.environ["LLM_MAGICS_CACHE_DIR"])


# --- hits and misses -----------------------------------------------------------------------


def test_a_cache_hit_sends_no_request_and_replays_the_same_answer(srv: FakeOpenAIServer) -> None:
    c = client(srv)
    first = c.chat("What is 2 + 2?")
    second = c.chat("What is 2 + 2?")
    assert srv.request_count == 1
    assert second.text == first.text and second.text.startswith("echo: What is 2 + 2?")
    assert (first.cached, second.cached) == (False, True)
    assert second.usage == first.usage and second.model == first.model
    c.chat("What is 3 + 3?")
    assert srv.request_count == 2


def test_the_default_cache_lives_in_the_configured_directory_owner_only(
    srv: FakeOpenAIServer,
) -> None:
    client(srv).chat("hello")
    assert stat.S_IMODE(cache_dir().stat().st_mode) == 0o700
    stats = lm.cache_stats()
    assert stats.directory == str(cache_dir())
    assert (stats.entries, stats.writes, stats.misses) == (1, 1, 1)
    assert "entries" in str(stats) and "|" in stats._repr_markdown_()


def test_temperature_above_zero_is_cached_too(srv: FakeOpenAIServer) -> None:
    c = client(srv)
    assert c.chat("a poem", temperature=1.2).text == c.chat("a poem", temperature=1.2).text
    assert srv.request_count == 1


def test_cache_false_per_call_or_per_client_always_asks_and_stores_nothing(
    srv: FakeOpenAIServer,
) -> None:
    c = client(srv)
    c.chat("fresh please", cache=False)
    c.chat("fresh please", cache=False)
    uncached = client(srv, cache=False)
    uncached.chat("fresh please")
    assert uncached.cache is None
    assert srv.request_count == 3
    assert lm.cache_stats().entries == 0


def test_refresh_recomputes_and_overwrites_the_cached_answer(srv: FakeOpenAIServer) -> None:
    c = client(srv)
    old = c.chat("news?")
    new = c.chat("news?", cache="refresh")
    assert srv.request_count == 2
    assert new.text != old.text and not new.cached
    again = c.chat("news?")
    assert again.cached and again.text == new.text
    assert srv.request_count == 2


def test_a_streamed_answer_is_cached_once_complete_and_replays_as_a_stream(
    srv: FakeOpenAIServer,
) -> None:
    c = client(srv)
    prompt = "tell me a fairly long story about caches and streams"
    live = c.stream(prompt)
    live_pieces = list(live)
    assert len(live_pieces) > 3 and live.response is not None
    replay = c.stream(prompt)
    replay_pieces = list(replay)
    assert srv.request_count == 1
    assert len(replay_pieces) > 1
    assert "".join(replay_pieces) == "".join(live_pieces) == live.response.text
    assert replay.response is not None and replay.response.cached
    # The same request, not streamed, is the same cache entry.
    assert c.chat(prompt).text == live.response.text
    assert srv.request_count == 1


def test_a_stream_cut_mid_way_is_not_cached() -> None:
    with FakeOpenAIServer(drop_stream_after=2) as srv:
        c = client(srv)
        with pytest.raises(lm.StreamInterruptedError):
            list(c.stream("one two three four five six seven eight"))
    assert lm.cache_stats().entries == 0


# --- the key -------------------------------------------------------------------------------


def test_every_parameter_that_changes_the_answer_changes_the_key(srv: FakeOpenAIServer) -> None:
    cache = ResponseCache(cache_dir())
    c = client(srv)
    provider = c.provider

    def key(prompt: Any = "hi", *, via: Any = None, model: str = "fake:m", **options: Any) -> str:
        source = client(srv, model) if model != "fake:m" else c
        return cache.key_for(via or provider, source.build_request(prompt, **options))

    def tool_a(city: str) -> str:
        """Weather in a city."""
        return city

    def tool_b(city: str, days: int) -> str:
        """Weather in a city."""
        return city

    png_1 = MediaPart("image", "image/png", data=b"\x89PNG one")
    png_2 = MediaPart("image", "image/png", data=b"\x89PNG two")
    variants = {
        "base": key(),
        "messages": key("hello"),
        "history": key([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]),
        "model": key(model="fake:other-model"),
        "system": key(system="be brief"),
        "temperature": key(temperature=0.7),
        "max_tokens": key(max_tokens=5),
        "top_p": key(top_p=0.5),
        "stop": key(stop=["\n"]),
        "seed": key(seed=7),
        "tools": key(tools=[tool_a]),
        "tool schema": key(tools=[tool_b]),
        "tool_choice": key(tools=[tool_a], tool_choice="required"),
        "schema": key(schema={"type": "object", "properties": {"a": {"type": "string"}}}),
        "other schema": key(schema={"type": "object", "properties": {"b": {"type": "string"}}}),
        "json_mode": key(json_mode=True),
        "extra": key(extra_body={"frequency_penalty": 0.5}),
        "image": key(["hi", png_1]),
        "other image": key(["hi", png_2]),
        "base url": key(via=OpenAICompatProvider("fake", "http://elsewhere:1/v1")),
        "provider": key(via=OpenAICompatProvider("fake2", provider.base_url)),
    }
    assert len(set(variants.values())) == len(variants)
    assert all(len(k) == 64 and int(k, 16) >= 0 for k in variants.values())
    # Equal requests written differently are one key.
    assert key(temperature=1) == key(temperature=1.0)
    assert key(["hi", png_1]) == key(["hi", MediaPart("image", "image/png", data=b"\x89PNG one")])
    assert key(extra_body={"a": 1, "b": 2}) == key(extra_body={"b": 2, "a": 1})


def test_the_api_key_is_not_part_of_the_key_and_never_reaches_the_cache_files(
    srv: FakeOpenAIServer,
) -> None:
    first = client(srv, api_key=KEY_A).chat("same question")
    second = client(srv, api_key=KEY_B).chat("same question")
    assert second.cached and second.text == first.text
    assert srv.request_count == 1
    _flush_all()  # answers reach the disk on the writer thread; the test reads the disk
    files = [p for p in cache_dir().rglob("*") if p.is_file()]
    assert files
    blob = b"".join(p.read_bytes() for p in files)
    assert b"echo: same question" in blob  # the answer is in there...
    for secret in (KEY_A, KEY_B):  # ...the keys are not, in any encoding
        assert secret.encode() not in blob
        assert secret.encode("utf-16-le") not in blob


# --- safety --------------------------------------------------------------------------------


class _Payload:
    """Pickling this gives bytes that, when unpickled, create a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (open, (str(self.marker), "w"))


def _tamper(directory: Path, key: str, *, value: bytes | None, filename: str | None) -> None:
    _flush_all()  # the row must be on disk before it can be tampered with
    with sqlite3.connect(directory / "cache.db") as db:
        updated = db.execute(
            "UPDATE Cache SET mode = 4, value = ?, filename = ? WHERE key = ?",
            (value, filename, key),
        ).rowcount
    assert updated == 1


def test_a_tampered_pickle_row_is_a_miss_reported_once_and_never_executed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(marker))
    directory = tmp_path / "shared-cache"
    cache = ResponseCache(directory)
    cache.put("k-inline", Response("fine", "m", "p"))
    cache.put("k-file", Response("fine", "m", "p"))
    _tamper(directory, "k-inline", value=payload, filename=None)
    (directory / "ab").mkdir()
    (directory / "ab" / "planted.val").write_bytes(payload)
    _tamper(directory, "k-file", value=None, filename="ab/planted.val")
    with caplog.at_level(logging.WARNING, logger="llm_magics._cache.store"):
        assert cache.get("k-inline") is None
        assert cache.get("k-file") is None
        assert cache.get("k-inline") is None
    assert not marker.exists()
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and str(directory) in refusals[0].getMessage()
    assert cache.stats().refused == 3
    # Control: the payload is live, so the test would notice if it had been unpickled.
    pickle.loads(payload).close()
    assert marker.exists()


def test_a_tampered_row_is_overwritten_by_the_fresh_answer(srv: FakeOpenAIServer) -> None:
    c = client(srv)
    c.chat("tamper me")
    assert c.cache is not None
    key = c.cache.key_for(c.provider, c.build_request("tamper me"))
    _tamper(cache_dir(), key, value=pickle.dumps({"not": "json"}), filename=None)
    fresh = c.chat("tamper me")
    assert not fresh.cached and srv.request_count == 2
    assert c.chat("tamper me").cached
    assert srv.request_count == 2


def test_a_row_naming_a_file_outside_the_cache_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.val"
    outside.write_bytes(b'{"v": 1, "response": {"text": "stolen", "model": "m", "provider": "p"}}')
    directory = tmp_path / "c"
    cache = ResponseCache(directory)
    cache.put("k", Response("fine", "m", "p"))
    cache.flush()
    with sqlite3.connect(directory / "cache.db") as db:
        db.execute(
            "UPDATE Cache SET mode = 2, value = NULL, filename = ? WHERE key = 'k'",
            ("../outside.val",),
        )
    assert cache.get("k") is None
    cache.clear()  # eviction must not delete the file it names either
    assert outside.exists()


def test_the_disk_layer_refuses_to_store_anything_but_bytes(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c")
    assert isinstance(cache._store.disk, JSONDisk)
    with pytest.raises(TypeError, match="JSON bytes"):
        cache._store.set("k", {"would": "be pickled"})
    with pytest.raises(TypeError):
        cache._store.set(("tuple", "key"), b"{}")


def test_a_corrupt_value_is_a_miss(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c")
    cache._store.set("k", b"\x00 not json")
    assert cache.get("k") is None


def _write_entries(directory: str, tag: str, count: int, barrier: Any) -> None:
    cache = ResponseCache(directory)
    barrier.wait()
    for i in range(count):
        cache.put(f"{tag}-{i}", Response(f"{tag} answer {i}", "m", "p", usage=Usage(i, 1)))
    cache.close()


def test_two_processes_writing_one_directory_concurrently_lose_nothing(tmp_path: Path) -> None:
    directory = str(tmp_path / "shared")
    count = 150
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [
        ctx.Process(target=_write_entries, args=(directory, tag, count, barrier))
        for tag in ("kernel-1", "kernel-2")
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    cache = ResponseCache(directory)
    for tag in ("kernel-1", "kernel-2"):
        for i in range(count):
            found = cache.get(f"{tag}-{i}")
            assert found is not None and found.text == f"{tag} answer {i}"
    assert cache.stats().entries == 2 * count


def test_threads_sharing_one_cache_lose_nothing(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c")

    def work(n: int) -> None:
        for i in range(50):
            cache.put(f"{n}-{i}", Response(f"{n}/{i}", "m", "p"))
            assert cache.get(f"{n}-{i}") is not None

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.stats().entries == 400 and cache.stats().hits == 400


# --- limits and settings -------------------------------------------------------------------


def test_the_size_limit_evicts_the_oldest_answers_first(tmp_path: Path) -> None:
    limit = 200_000
    cache = ResponseCache(tmp_path / "c", size_limit=limit)
    for i in range(300):
        cache.put(f"k{i}", Response("x" * 4_000 + str(i), "m", "p"))
    stats = cache.stats()
    assert stats.size_bytes <= limit
    assert cache.get("k0") is None
    assert cache.get("k299") is not None
    assert 0 < stats.entries < 300


def test_entries_expire_after_the_ttl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time as real_time

    import diskcache.core

    now = [real_time.time()]

    class Clock:
        @staticmethod
        def time() -> float:
            return now[0]

    monkeypatch.setattr(diskcache.core, "time", Clock)
    cache = ResponseCache(tmp_path / "c", ttl=60)
    cache.put("k", Response("soon gone", "m", "p"))
    now[0] += 59
    assert cache.get("k") is not None
    now[0] += 2
    assert cache.get("k") is None
    assert cache.clear(expired=True) == 1


def test_size_and_ttl_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_MAGICS_CACHE_TTL", "7d")
    monkeypatch.setenv("LLM_MAGICS_CACHE_SIZE", "500MB")
    cache = default_cache()
    assert cache.ttl == 7 * 86_400
    assert cache.size_limit == 500 * 2**20
    assert cache.directory == cache_dir()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LLM_MAGICS_CACHE_TTL", "soon"),
        ("LLM_MAGICS_CACHE_SIZE", "huge"),
        ("LLM_MAGICS_CACHE_SIZE", "1"),
    ],
)
def test_a_bad_cache_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(lm.ConfigError, match=variable):
        default_cache()


def test_clear_cache_removes_all_or_one_model(srv: FakeOpenAIServer) -> None:
    client(srv).chat("q1")
    client(srv).chat("q2")
    client(srv, "fake:other").chat("q1")
    assert lm.cache_stats().entries == 3
    assert lm.clear_cache("fake:other") == 1
    assert lm.clear_cache("nobody") == 0
    assert lm.cache_stats().entries == 2
    assert lm.clear_cache() == 2
    assert lm.cache_stats().entries == 0
    client(srv).chat("q1")
    assert srv.request_count == 4


# --- a cache that cannot be written (case 9 of the hardening issue) ------------------------

_READ_ONLY_SCRIPT = """
import logging, sys
import llm_magics as lm
logging.basicConfig(level=logging.WARNING, format="%(message)s")
lm.register("fake", sys.argv[1], api_key="sk-cache-test-key-A-0123456789")
c = lm.client("fake:m")
again = c.chat("asked before")
fresh = c.chat("never asked")
off = c.chat("never asked either", cache=False)
print("ANSWERS", again.cached, again.text, "|", fresh.cached, "|", off.text)
stats = lm.cache_stats()
print("STATS", stats.read_only, stats.entries)
"""


def _as_a_user_who_cannot_write(argv: list[str]) -> list[str]:
    # Root writes anywhere; without CAP_DAC_OVERRIDE it meets the file modes like anyone.
    if os.geteuid() != 0:
        return argv
    drop = "-dac_override,-dac_read_search,-fowner"
    return ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *argv]


def test_a_read_only_cache_is_read_never_written_and_fails_no_call(
    srv: FakeOpenAIServer, tmp_path: Path
) -> None:
    import subprocess
    import sys

    directory = tmp_path / "read-only-cache"
    writable = ResponseCache(directory)
    lm.register("fake", srv.base_url, api_key=KEY_A)
    first = lm.client("fake:m", cache=writable).chat("asked before")
    writable.close()
    for path in [directory, *directory.rglob("*")]:
        path.chmod(0o500 if path.is_dir() else 0o400)
    try:
        env = {**os.environ, "LLM_MAGICS_CACHE_DIR": str(directory)}
        run = subprocess.run(
            _as_a_user_who_cannot_write([sys.executable, "-c", _READ_ONLY_SCRIPT, srv.base_url]),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        for path in [directory, *directory.rglob("*")]:
            path.chmod(0o700 if path.is_dir() else 0o600)
    assert run.returncode == 0, run.stderr
    assert f"ANSWERS True {first.text} | False |" in run.stdout, "the old answer is read"
    assert "STATS True 1" in run.stdout, "stats work and say read-only; nothing was added"
    warnings = [line for line in run.stderr.splitlines() if "cannot be written" in line]
    assert len(warnings) == 1, run.stderr
    assert "LLM_MAGICS_CACHE_DIR" in warnings[0] and str(directory) in warnings[0]
    assert "Traceback" not in run.stderr


def test_clearing_a_read_only_cache_says_which_setting_to_change(tmp_path: Path) -> None:
    store = ResponseCache(tmp_path / "ro")
    store.read_only = True
    with pytest.raises(lm.ConfigError, match=r"read-only.*LLM_MAGICS_CACHE_DIR"):
        store.clear()
    store.close()
