"""The shared Redis response cache, against a real redis-server: the same keys and JSON bytes
as the disk cache, hits across clients and processes, a planted pickle never executed, TTL
and size limits, clear by model, a password never shown, and a Redis that is down never
failing a call."""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

import llm_magics as lm
from llm_magics._cache.redis_store import RedisCache, redacted_url
from llm_magics._cache.store import ResponseCache
from llm_magics._core.errors import ConfigError
from llm_magics._core.types import Response, Usage
from llm_magics.providers.openai_compat import OpenAICompatProvider
from tests.support.redis_server import redis_server
from tests.support.server import FakeOpenAIServer

KEY = "sk-redis-test-key-0123456789abcdef"


def _response(text: str, model: str = "m", provider: str = "fake") -> Response:
    return Response(text=text, model=model, provider=provider, usage=Usage(3, 5))


def _request(prompt: str) -> tuple[Any, Any]:
    provider = OpenAICompatProvider("fake", "http://127.0.0.1:1/v1")
    client = lm.Client(provider, "m")
    return provider, client.build_request(prompt)


def test_redis_holds_the_same_key_and_the_same_json_bytes_as_the_disk_cache(
    redis_url: str, tmp_path: Path
) -> None:
    shared = RedisCache(redis_url)
    disk = ResponseCache(tmp_path / "disk")
    provider, request = _request("What is 2 + 2?")
    key = shared.key_for(provider, request)
    assert key == disk.key_for(provider, request)
    answer = _response("4")
    shared.put(key, answer)
    disk.put(key, answer)
    assert shared.flush() and disk.flush()
    stored = redis.Redis.from_url(redis_url).get(f"llm_magics:r:{key}")
    on_disk = disk._store.get(key)
    assert stored is not None and on_disk is not None
    # The same JSON row; only the second field, the time it was stored, differs.
    row, disk_row = json.loads(stored), json.loads(on_disk)
    assert row[:1] + row[2:] == disk_row[:1] + disk_row[2:]
    hit = RedisCache(redis_url).get(key)  # another cache object: read from the server
    assert hit is not None and hit.text == "4" and hit.usage == Usage(3, 5)


def test_a_client_with_a_redis_cache_sends_a_repeated_prompt_once(redis_url: str) -> None:
    with FakeOpenAIServer() as srv:
        lm.register("fake", srv.base_url, api_key=KEY)
        c = lm.client("fake:m", cache=redis_url)
        first = c.chat("hello there")
        again = lm.client("fake:m", cache=redis_url).chat("hello there")
        assert srv.request_count == 1
        assert again.cached and again.text == first.text
        assert isinstance(c.cache, RedisCache)


def test_the_cache_url_variable_makes_redis_the_kernels_cache(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_MAGICS_CACHE_URL", redis_url)
    with FakeOpenAIServer() as srv:
        lm.register("fake", srv.base_url, api_key=KEY)
        lm.client("fake:m").chat("one")
        lm.client("fake:m").chat("one")
        assert srv.request_count == 1
    stats = lm.cache_stats()
    assert stats.directory == redis_url
    assert stats.entries == 1 and stats.writes == 1 and stats.hits == 1


def test_two_processes_share_answers_through_redis(redis_url: str) -> None:
    with FakeOpenAIServer() as srv:
        code = (
            "import llm_magics as lm;"
            f"lm.register('fake', {srv.base_url!r}, api_key={KEY!r});"
            "print(lm.client('fake:m').chat('shared question').text)"
        )
        env = {**os.environ, "LLM_MAGICS_CACHE_URL": redis_url}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert srv.request_count == 1
        lm.register("fake", srv.base_url, api_key=KEY)
        here = lm.client("fake:m", cache=redis_url).chat("shared question")
        assert here.cached and here.text == out.stdout.strip()
        assert srv.request_count == 1  # this process asked nothing


class _Exploit:
    def __reduce__(self) -> Any:
        return (os.system, (f"touch {os.environ['LLM_MAGICS_CACHE_DIR']}-PWNED",))


def test_a_planted_pickle_is_refused_never_unpickled(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = RedisCache(redis_url)
    provider, request = _request("planted")
    key = cache.key_for(provider, request)
    redis.Redis.from_url(redis_url).set(f"llm_magics:r:{key}", pickle.dumps(_Exploit()))
    with caplog.at_level(logging.WARNING, "llm_magics"):
        assert cache.get(key) is None
    assert not Path(os.environ["LLM_MAGICS_CACHE_DIR"] + "-PWNED").exists()
    assert cache.stats().refused == 1
    assert "refused a response-cache row" in caplog.text


def test_answers_expire_after_the_ttl(redis_url: str) -> None:
    cache = RedisCache(redis_url, ttl=0.3)
    cache.put("k1", _response("soon gone"))
    cache.flush()
    assert cache.get("k1") is not None
    time.sleep(0.5)
    assert cache.get("k1") is None
    stats = cache.stats()  # the bookkeeping of expired answers is dropped too
    assert (stats.entries, stats.size_bytes, stats.ttl) == (0, 0, 0.3)


def test_the_size_limit_evicts_the_oldest_answers_first(redis_url: str) -> None:
    one = len(_encoded(_response("x" * 200)))
    cache = RedisCache(redis_url, size_limit=one * 5 + one // 2)
    for i in range(12):
        cache.put(f"k{i:02d}", _response("x" * 200))
        cache.flush()  # one write each, so their store times are in order
    stats = cache.stats()
    assert stats.entries == 5 and stats.size_bytes <= stats.size_limit
    assert [k for k in (f"k{i:02d}" for i in range(12)) if cache.get(k)] == [
        "k07", "k08", "k09", "k10", "k11",
    ]  # fmt: skip


def _encoded(response: Response) -> bytes:
    from llm_magics._cache.codec import encode_response

    return encode_response(response)


def test_clear_removes_one_models_answers_or_all(redis_url: str) -> None:
    cache = RedisCache(redis_url)
    cache.put("a", _response("1", model="small"))
    cache.put("b", _response("2", model="big"))
    cache.put("c", _response("3", model="big", provider="other"))
    assert cache.clear("fake:big") == 1
    assert cache.get("b") is None and cache.get("a") is not None
    assert cache.clear("other") == 1
    assert cache.clear() == 1
    assert cache.stats().entries == 0 and cache.stats().size_bytes == 0


def test_a_password_in_the_url_never_shows(tmp_path: Path) -> None:
    secret = "hunter2-redis-password"
    with redis_server(tmp_path, password=secret) as server:
        cache = RedisCache(server.url)
        cache.put("k", _response("guarded"))
        cache.flush()
        assert cache.get("k") is not None
        shown = [repr(cache), str(cache.stats()), cache.stats()._repr_markdown_()]
        assert all(secret not in s for s in shown) and "***" in repr(cache)
        with pytest.raises(TypeError, match="LLM_MAGICS_CACHE_URL"):
            pickle.dumps(cache)
    assert redacted_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_a_redis_that_is_down_never_fails_a_call(caplog: pytest.LogCaptureFixture) -> None:
    down = "redis://127.0.0.1:9/0"  # the discard port: nothing listens
    with FakeOpenAIServer() as srv, caplog.at_level(logging.WARNING, "llm_magics"):
        lm.register("fake", srv.base_url, api_key=KEY)
        c = lm.client("fake:m", cache=down)
        assert c.chat("still answered").text.startswith("echo: still answered")
        assert c.cache.flush(timeout=20)  # type: ignore[union-attr]  # the write is dropped
        assert c.chat("still answered").text.startswith("echo: still answered")
        assert srv.request_count == 2
    assert "Redis response cache redis://127.0.0.1:9/0 failed" in caplog.text
    assert "unset LLM_MAGICS_CACHE_URL" in caplog.text


def test_a_url_that_is_not_redis_says_which_variable_to_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match=r"LLM_MAGICS_CACHE_URL=redis://host:6379/0"):
        RedisCache("http://example.com/")
    monkeypatch.setenv("LLM_MAGICS_CACHE_URL", "redis://:pw@[::1")
    with pytest.raises(ConfigError, match="LLM_MAGICS_CACHE_URL") as caught:
        lm.cache_stats()
    assert "pw" not in str(caught.value)
