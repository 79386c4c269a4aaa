"""The one worker thread that runs every call into the embedded models.

A ``Llama`` object is not thread-safe, so every call into a model runs on the single
:data:`worker` thread (holding that model's lock); the event loop only awaits. A job can be
stopped between two tokens through its cancel event.

Thread safety: :meth:`Worker.call` and :meth:`Worker.stream` may be awaited from any event
loop and thread. Fork safety: a forked child starts its own thread, with no backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["Done", "Worker", "worker"]

T = TypeVar("T")


@dataclass(frozen=True)
class Done(Generic[T]):
    """The last item of :meth:`Worker.stream`: what the job returned."""

    value: T


class Worker:
    """One daemon thread that runs every call into the embedded models, in order.

    A daemon thread rather than a ThreadPoolExecutor: the executor's threads are joined at
    interpreter exit, so a kernel shutdown would first run every queued DataFrame row.
    Thread safety: :meth:`call` and :meth:`stream` may be awaited from any event loop.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def _submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._queue = queue.SimpleQueue()  # a forked child starts with no backlog
                self._thread = threading.Thread(
                    target=self._serve, args=(self._queue,), name=self.name, daemon=True
                )
                self._thread.start()
                self._pid = os.getpid()
            self._queue.put(job)

    @staticmethod
    def _serve(jobs: queue.SimpleQueue[Callable[[], None]]) -> None:
        while True:
            jobs.get()()  # jobs catch their own exceptions

    async def call(self, fn: Callable[[threading.Event], T]) -> T:
        """Run ``fn(cancel)`` on the worker and return its result. Cancelling the awaiting
        task sets ``cancel`` (the job stops at its next check) or drops a job still queued."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        cancel = threading.Event()

        def settle(result: Any, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def job() -> None:
            if cancel.is_set():
                return
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(cancel)
            except BaseException as exc:  # delivered to the awaiting task, not lost here
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                loop.call_soon_threadsafe(settle, result, error)

        self._submit(job)
        try:
            return await future
        finally:
            cancel.set()

    async def stream(
        self, fn: Callable[[Callable[[str], None], threading.Event], T]
    ) -> AsyncIterator[str | Done[T]]:
        """Run ``fn(emit, cancel)`` on the worker; yield each text it emits as it is produced,
        then :class:`Done` with its result. Leaving the iteration early (break, aclose,
        cancellation) sets ``cancel``, so the job stops at its next token."""
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        cancel = threading.Event()

        def put(kind: int, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(items.put_nowait, (kind, value))
            except RuntimeError:  # the loop is closed: stop producing
                cancel.set()

        def job() -> None:
            if cancel.is_set():
                return
            try:
                result = fn(lambda text: put(0, text), cancel)
            except BaseException as exc:
                put(2, exc)
            else:
                put(1, result)

        self._submit(job)
        try:
            while True:
                kind, value = await items.get()
                if kind == 0:
                    yield value
                elif kind == 1:
                    yield Done(value)
                    return
                else:
                    raise value
        finally:
            cancel.set()


#: Runs every llama.cpp and Whisper call of this process.
worker = Worker("llm_magics-local")
