"""The private event-loop thread: sync calls from anywhere, Ctrl-C that cancels and cleans up,
no deadlock from inside the loop, and one pooled HTTP client per loop."""

from __future__ import annotations

import _thread
import asyncio
import threading
import time

import pytest

from llm_magics._runtime import http as _http
from llm_magics._runtime import loop as _loop


def test_run_returns_the_result_from_the_loop_thread() -> None:
    async def where() -> str:
        return threading.current_thread().name

    assert _loop.run(where()) == "llm_magics-loop"


def test_run_works_from_many_threads_at_once() -> None:
    async def square(n: int) -> int:
        await asyncio.sleep(0.01)
        return n * n

    results: dict[int, int] = {}

    def worker(n: int) -> None:
        results[n] = _loop.run(square(n))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {n: n * n for n in range(16)}


def test_a_sync_call_from_inside_the_loop_raises_instead_of_deadlocking() -> None:
    async def nested() -> None:
        async def inner() -> int:
            return 1

        _loop.run(inner())

    with pytest.raises(RuntimeError, match="use the async method"):
        _loop.run(nested())


def test_ctrl_c_cancels_the_coroutine_and_lets_it_clean_up() -> None:
    cleaned = threading.Event()

    async def long_job() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.set()

    timer = threading.Timer(0.2, _thread.interrupt_main)
    timer.start()
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        _loop.run(long_job())
    assert time.perf_counter() - started < 5
    assert cleaned.wait(2), "the cancelled coroutine did not run its cleanup"


def test_iterate_closes_the_async_generator_when_the_consumer_stops_early() -> None:
    closed = threading.Event()

    async def numbers():  # type: ignore[no-untyped-def]
        try:
            for n in range(100):
                yield n
        finally:
            closed.set()

    got = []
    for n in _loop.iterate(numbers()):
        got.append(n)
        if n == 2:
            break
    assert got == [0, 1, 2]
    assert closed.wait(2)


def test_one_pooled_http_client_per_loop_reused_across_requests() -> None:
    async def grab() -> int:
        return id(_http.get_client())

    first, second = _loop.run(grab()), _loop.run(grab())
    assert first == second

    async def other_loop() -> int:
        return id(_http.get_client())

    assert asyncio.run(other_loop()) != first


def test_httpx2s_own_pool_has_deliberate_limits_and_keep_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_MAGICS_HTTP", "httpx2")  # read by the client of a new loop

    async def limits() -> tuple[int | None, int | None, float | None]:
        pool = _http.get_client()._transport._pool  # type: ignore[attr-defined]
        return pool._max_connections, pool._max_keepalive_connections, pool._keepalive_expiry

    assert asyncio.run(limits()) == (256, 128, 60.0)
