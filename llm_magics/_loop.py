"""The package's private event-loop thread.

Sync methods (``client.chat``, ``df.llm.map``, the magics) run their coroutines here, so they
work the same in a script and inside a Jupyter kernel, whose own loop is already running in the
main thread. Nothing patches the kernel's loop, and no ``asyncio.run`` is ever called in it.

Thread safety: :func:`run` and :func:`iterate` may be called from any thread except the loop
thread itself (that would deadlock; it raises instead). Fork safety: a forked child gets a new
loop thread on first use; the parent's is never touched from the child.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_POLL = 0.1
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_pid: int | None = None


def get_loop() -> asyncio.AbstractEventLoop:
    """The loop of the private thread, started on first use."""
    global _loop, _thread, _pid
    if _loop is not None and _pid == os.getpid() and _thread is not None and _thread.is_alive():
        return _loop
    with _lock:
        if _loop is None or _pid != os.getpid() or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def _serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=_serve, name="llm_magics-loop", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread, _pid = loop, thread, os.getpid()
    assert _loop is not None
    return _loop


def in_loop_thread() -> bool:
    return _thread is not None and threading.current_thread() is _thread


def run(coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
    """Run ``coro`` on the private loop and wait for its result.

    Ctrl-C (or a kernel interrupt) while waiting cancels the coroutine, waits briefly for it
    to unwind (so cleanup such as cache writes and closing streams happens), then re-raises
    KeyboardInterrupt.
    """
    if in_loop_thread():
        coro.close()
        raise RuntimeError(
            "a synchronous llm_magics call was made from inside its own event loop; "
            "use the async method (achat, astream, aembed) there instead"
        )
    started, finished = threading.Event(), threading.Event()

    async def tracked() -> T:
        # Cancelling the concurrent future returns at once; this tells when the coroutine
        # itself has finished unwinding.
        started.set()
        try:
            return await coro
        finally:
            finished.set()

    future = asyncio.run_coroutine_threadsafe(tracked(), get_loop())
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        # Wait in short slices: a blocking wait is not woken by a simulated interrupt
        # (_thread.interrupt_main, some frontends), only by a real signal.
        # (Never catch TimeoutError around future.result(): on 3.11+ it is the builtin, which
        # our own lm.TimeoutError subclasses, so a request timeout would look like "not yet".)
        while not future.done():
            remaining = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
            if remaining <= 0:
                raise concurrent.futures.TimeoutError()
            concurrent.futures.wait([future], remaining)
        return future.result()
    except KeyboardInterrupt:
        future.cancel()
        if started.is_set():
            finished.wait(5)
        raise
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise


def iterate(agen: AsyncIterator[T]) -> Iterator[T]:
    """Iterate an async iterator from sync code, one item per hop to the loop thread.

    Closing the returned generator early (break, exception, Ctrl-C) closes ``agen`` too.
    """

    async def _next() -> tuple[bool, T | None]:
        try:
            return True, await agen.__anext__()
        except StopAsyncIteration:
            return False, None

    try:
        while True:
            more, item = run(_next())
            if not more:
                return
            yield item  # type: ignore[misc]
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            # The generator may already be closed or mid-cancel; nothing to recover.
            with contextlib.suppress(Exception):
                run(aclose())
