"""The pooled HTTP clients: one httpx2 AsyncClient per event loop (and per test transport),
sending through aiohttp's stack (:mod:`llm_magics._runtime.aiohttp_transport`) unless
``LLM_MAGICS_HTTP=httpx2``, which is read when a loop's client is made.

Lifecycle: the pooled clients close cleanly, with no "Unclosed client session": those of a
loop run by ``asyncio.run`` when it shuts down its async generators, the others at exit.

Thread safety: :func:`get_client` may be called from any thread; each event loop gets its own
AsyncClient (an AsyncClient must not be shared across loops).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._core import errors
from .._core.settings import load_dotenv_once

if TYPE_CHECKING:
    import httpx2

__all__ = ["Pool", "get_client", "pool_for"]

# ---------------------------------------------------------------------------------------------
# Shared clients


# Enough sockets for concurrency 64 x a few hosts, with keep-alive long enough to survive the
# gaps between cells; the same on either stack.
_MAX_CONNECTIONS = 256
_KEEPALIVE_EXPIRY = 60.0


@dataclass(frozen=True)
class Pool:
    """A loop's pooled client, and the transport to hand requests to directly (None: send
    through the client, whose proxy mounts then choose the transport)."""

    client: httpx2.AsyncClient
    direct: Any
    defaults: tuple[tuple[str, str], ...]  # the client's default headers, and JSON's type


_clients_lock = threading.Lock()
# (loop, transport, pool) of the last lookup; the loop by weak reference so a finished
# loop (asyncio.run in a script) can still be collected.
_last_pool: tuple[weakref.ref[asyncio.AbstractEventLoop], Any, Pool] | None = None
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, Pool]] = (
    weakref.WeakKeyDictionary()
)


def get_client(transport: Any = None) -> httpx2.AsyncClient:
    """The pooled AsyncClient of the running loop (one per transport, for tests)."""
    return pool_for(transport).client


def pool_for(transport: Any) -> Pool:
    loop = asyncio.get_running_loop()
    # Fast path: the same loop and transport as last time (every request of a batch).
    last = _last_pool
    if (
        last is not None
        and last[0]() is loop
        and last[1] is transport
        and not last[2].client.is_closed
    ):
        return last[2]
    return _pool_slow(loop, transport)


def _pool_slow(loop: asyncio.AbstractEventLoop, transport: Any) -> Pool:
    global _last_pool
    import httpx2

    with _clients_lock:
        per_loop = _pools.setdefault(loop, {})
        key = id(transport)
        pool = per_loop.get(key)
        if pool is None or pool.client.is_closed:
            direct = transport
            if transport is None and _backend() == "aiohttp":
                from .aiohttp_transport import AiohttpTransport

                direct = AiohttpTransport(
                    max_connections=_MAX_CONNECTIONS, keepalive_expiry=_KEEPALIVE_EXPIRY
                )
            client = httpx2.AsyncClient(
                transport=direct,
                limits=httpx2.Limits(
                    max_connections=_MAX_CONNECTIONS,
                    max_keepalive_connections=_MAX_CONNECTIONS // 2,
                    keepalive_expiry=_KEEPALIVE_EXPIRY,
                ),
                timeout=httpx2.Timeout(60.0, connect=10.0),
                follow_redirects=False,
                trust_env=True,
            )
            defaults = (*client.headers.items(), ("content-type", "application/json"))
            pool = per_loop[key] = Pool(client, direct, defaults)
            if transport is None:  # ours (a caller's own transport is the caller's to close)
                _POOLED.track(loop, client)
        _last_pool = (weakref.ref(loop), transport, pool)
        return pool


_BACKENDS = ("aiohttp", "httpx2")


def _backend() -> str:
    """Which HTTP stack sends: ``LLM_MAGICS_HTTP`` (aiohttp unless it says httpx2)."""
    load_dotenv_once()
    chosen = os.environ.get("LLM_MAGICS_HTTP", "").strip().lower() or "aiohttp"
    if chosen not in _BACKENDS:
        raise errors.ConfigError(
            f"LLM_MAGICS_HTTP must be aiohttp (the default) or httpx2; got {chosen!r}"
        )
    if chosen == "aiohttp":
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            if os.environ.get("LLM_MAGICS_HTTP"):
                raise errors.ConfigError(
                    "LLM_MAGICS_HTTP=aiohttp, but aiohttp is not installed: pip install aiohttp"
                ) from None
            return "httpx2"
    return chosen


async def _close_with_the_loop(client: httpx2.AsyncClient) -> AsyncGenerator[None, None]:
    # Suspended at its yield until the loop shuts down its async generators (asyncio.run
    # does, before closing the loop), which runs the finally on the live loop.
    try:
        yield
    finally:
        await client.aclose()


async def _first_step(agen: AsyncIterator[None]) -> None:
    await agen.__anext__()


class PooledClients:
    """The pooled clients made here, so each is closed on its own loop (an unclosed one
    leaves "Unclosed client session" or "unclosed transport" warnings at exit)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: list[tuple[weakref.ref[asyncio.AbstractEventLoop], httpx2.AsyncClient, Any]] = []

    def track(self, loop: asyncio.AbstractEventLoop, client: httpx2.AsyncClient) -> None:
        closer = _close_with_the_loop(client)
        # Its first step registers it with the loop's async generators (a task so that this
        # stays a plain function); the strong reference below keeps it until then.
        started = loop.create_task(_first_step(closer))
        with self.lock:
            self.open = [e for e in self.open if not e[1].is_closed]
            self.open.append((weakref.ref(loop), client, (closer, started)))

    def close_all(self, timeout: float = 5.0) -> None:
        """At exit: close every client still open whose loop can still run it."""
        with self.lock:
            entries, self.open = self.open, []
        for loop_ref, client, (closer, _) in entries:
            loop = loop_ref()
            if client.is_closed or loop is None or loop.is_closed():
                continue
            with contextlib.suppress(Exception):
                if loop.is_running():
                    future = asyncio.run_coroutine_threadsafe(closer.aclose(), loop)
                    future.result(timeout)
                else:
                    loop.run_until_complete(closer.aclose())


_POOLED = PooledClients()
atexit.register(_POOLED.close_all)
