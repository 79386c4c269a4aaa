"""A real OpenAI-compatible server for the embedded model, shared by the tests that need one
(registered as session fixtures in tests/conftest.py, so one server serves the whole run).

``llama_server``: ``llama_cpp.server`` for the embedded GGUF, started with
:func:`llm_magics.serve_local` (a free port on 127.0.0.1, a bounded wait, stopped at the end).
``forward``: a SpecTransport handler that sends each validated request on to that server, so
a test can check the request bodies against OpenAI's spec while a real model answers.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator

import httpx2
import pytest

__all__ = ["Forward", "forward", "llama_server"]


class Forward:
    """A SpecTransport handler that sends each validated request on to the real server."""

    def __init__(self) -> None:
        self.clients: dict[asyncio.AbstractEventLoop, httpx2.AsyncClient] = {}

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        loop = asyncio.get_running_loop()
        client = self.clients.get(loop)
        if client is None:
            client = self.clients[loop] = httpx2.AsyncClient(timeout=120)
        upstream = httpx2.Request(
            request.method, request.url, headers=request.headers, content=request.content
        )
        return await client.send(upstream, stream=True)

    def close(self) -> None:
        from llm_magics._runtime import loop as _loop

        for loop, client in self.clients.items():
            if loop is _loop.get_loop():
                _loop.run(client.aclose())


@pytest.fixture(scope="session")
def llama_server() -> Iterator[object]:
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
        pytest.skip("the [local] extra (llama-cpp-python[server]) is not installed")
    import llm_magics as lm

    # serve_local picks a free port on 127.0.0.1, polls /v1/models with a bounded timeout,
    # and stops the process itself when it does not come up.
    server = lm.serve_local(timeout=180)
    try:
        yield server
    finally:
        server.stop()
        assert not server.running


@pytest.fixture(scope="session")
def forward() -> Iterator[Forward]:
    handler = Forward()
    yield handler
    handler.close()
