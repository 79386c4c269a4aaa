"""The package's private event-loop thread.

Sync methods (``client.chat``, ``df.llm.map``, the magics) run their coroutines here, so they
work the same in a script and inside a Jupyter kernel, whose own loop is already running in the
main thread. Nothing patches the kernel's loop, and no ``asyncio.run`` is ever called in it.

Thread safety: :func:`run`, :func:`iterate` and :class:`Relay` may be used from any thread except the loop
thread itself (that would deadlock; it raises instead). Fork safety: a forked child gets a new
loop thread on first use; the parent's is never touched from the child.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Generic, TypeVar

from .waits import Wait, listening

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


def run(
    coro: Coroutine[Any, Any, T],
    *,
    timeout: float | None = None,
    on_wait: Callable[[Wait], None] | None = None,
    on_poll: Callable[[], None] | None = None,
) -> T:
    """Run ``coro`` on the private loop and wait for its result.

    ``on_wait`` is called on this thread with each wait the work announces (see
    :mod:`llm_magics._runtime.waits`), so it may update a display; ``on_poll`` every tenth of a
    second while the work runs.

    Ctrl-C (or a kernel interrupt) while waiting cancels the coroutine, waits briefly for it
    to unwind (so cleanup such as cache writes and closing streams happens), then re-raises
    KeyboardInterrupt.
    """
    _refuse_inside_the_loop(coro)
    started, finished = threading.Event(), threading.Event()
    waits: queue.SimpleQueue[Wait] = queue.SimpleQueue()
    listener = None if on_wait is None else waits.put
    future = asyncio.run_coroutine_threadsafe(
        _tracked(coro, started, finished, listener), get_loop()
    )
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        _wait_in_slices(future, deadline, waits, on_wait, on_poll)
        # (Never catch TimeoutError around future.result(): on 3.11+ it is the builtin, which
        # our own lm.TimeoutError subclasses, so a request timeout would look like "not yet".)
        return future.result()
    except KeyboardInterrupt:
        future.cancel()
        if started.is_set():
            finished.wait(5)
        raise
    except _LoopTimeout:
        future.cancel()
        raise concurrent.futures.TimeoutError() from None


def _refuse_inside_the_loop(coro: Coroutine[Any, Any, Any]) -> None:
    """A sync call from the loop thread would wait for itself forever: refuse it."""
    if in_loop_thread():
        coro.close()
        raise RuntimeError(
            "a synchronous llm_magics call was made from inside its own event loop; "
            "use the async method (achat, astream, aembed) there instead"
        )


async def _tracked(
    coro: Coroutine[Any, Any, T],
    started: threading.Event,
    finished: threading.Event,
    listener: Callable[[Wait], None] | None,
) -> T:
    """``coro``, telling when it started and when it has finished unwinding.

    Cancelling the concurrent future returns at once; ``finished`` tells when the coroutine
    itself is done. ``listener`` receives the waits it announces."""
    started.set()
    try:
        if listener is None:
            return await coro
        with listening(listener):
            return await coro
    finally:
        finished.set()


def _wait_in_slices(
    future: concurrent.futures.Future[Any],
    deadline: float | None,
    waits: queue.SimpleQueue[Wait],
    on_wait: Callable[[Wait], None] | None,
    on_poll: Callable[[], None] | None,
) -> None:
    """Wait for ``future`` in short slices, handing over waits and polling in between.

    A blocking wait is not woken by a simulated interrupt (_thread.interrupt_main, some
    frontends), only by a real signal. Raises _LoopTimeout at ``deadline``."""
    while not future.done():
        remaining = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
        if remaining <= 0:
            raise _LoopTimeout()
        concurrent.futures.wait([future], remaining)
        while on_wait is not None and not waits.empty():
            on_wait(waits.get_nowait())
        if on_poll is not None:
            on_poll()


class _LoopTimeout(Exception):
    """run()'s own timeout, told apart from any TimeoutError the coroutine raises."""


class Relay(Generic[T]):
    """The items of an async iterator, produced by one task on the loop thread and taken
    from another thread: the one sync-over-async bridge for streams.

    :meth:`get` returns ``("item", value)``, ``("wait", Wait)`` for each wait the work
    announces, ``("idle", None)`` when nothing came within the timeout, and ``("end",
    None)``; an exception of the iterator is raised by :meth:`get`. The producer runs ahead of
    the consumer (stream deltas are small). :meth:`close` cancels the producer and waits
    briefly for it to unwind; it is safe to call twice.
    """

    def __init__(self, agen: AsyncIterator[T]) -> None:
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._agen = agen
        self._finished = False
        self._future = asyncio.run_coroutine_threadsafe(self._produce(), get_loop())

    async def _produce(self) -> None:
        put = self._events.put
        try:
            with listening(lambda wait: put(("wait", wait))):
                async for item in self._agen:
                    put(("item", item))
            put(("end", None))
        except BaseException as exc:  # CancelledError included: the consumer is told
            put(("error", exc))
            raise
        finally:
            aclose = getattr(self._agen, "aclose", None)
            if aclose is not None:
                # The generator may already be closed or mid-cancel; nothing to recover.
                with contextlib.suppress(BaseException):
                    await aclose()

    def get(self, timeout: float) -> tuple[str, Any]:
        try:
            kind, value = self._events.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return "idle", None
        if kind == "error":
            self._finished = True
            raise value
        if kind == "end":
            self._finished = True
        return kind, value

    def close(self, timeout: float = 5.0) -> None:
        if self._finished and self._future.done():
            return
        self._finished = True
        self._future.cancel()
        # Let it unwind (close the HTTP response) before the caller goes on.
        concurrent.futures.wait([self._future], timeout)


def iterate(agen: AsyncIterator[T]) -> Iterator[T]:
    """Iterate an async iterator from sync code (through a :class:`Relay`).

    Closing the returned generator early (break, exception, Ctrl-C) closes ``agen`` too.
    """
    relay = Relay(agen)
    try:
        while True:
            kind, value = relay.get(_POLL)  # short slices, for simulated interrupts
            if kind == "item":
                yield value
            elif kind == "end":
                return
    finally:
        relay.close()
