"""Shared pieces of the magics tests: one InteractiveShell per session, a fresh extension per
test, and a scripted OpenAI backend behind SpecTransport (every request body and stream event
is validated against OpenAI's published spec)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
import pytest

from llm_magics._client import registry
from llm_magics._core.session import SESSION
from tests.support.specs import SpecTransport

KEY = "sk-magics-test-SENTINEL-0123456789abcdef"
MODEL = "openai:gpt-4o-mini"

_shell: Any = None
_baseline: set[str] = set()


def get_shell() -> Any:
    """The session's InteractiveShell (a singleton in IPython), history kept in memory."""
    global _shell
    if _shell is None:
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config

        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        _shell = InteractiveShell.instance(config=config)
        _baseline.update(_shell.user_ns)
    return _shell


def _clear_namespace(shell: Any) -> None:
    # Cheaper than shell.reset(), whose gc.collect() takes ~0.5 s once the specs are loaded.
    for name in set(shell.user_ns) - _baseline:
        del shell.user_ns[name]


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def chunk(content: str | None, finish: str | None = None, usage: bool = False) -> bytes:
    event: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": []
        if usage
        else [
            {
                "index": 0,
                "delta": {"content": content} if content is not None else {},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
    }
    if usage:
        event["usage"] = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    return f"data: {json.dumps(event)}\n\n".encode()


def last_user_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


class _Events(httpx2.AsyncByteStream):
    def __init__(self, fake: FakeOpenAI, pieces: list[str]) -> None:
        self.fake = fake
        self.pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        fake = self.fake
        try:
            for i, piece in enumerate(self.pieces):
                pause = fake.delays[i - 1] if 0 < i <= len(fake.delays) else fake.delay
                if i and pause:
                    await asyncio.sleep(pause)
                fake.first_byte_at = fake.first_byte_at or time.perf_counter()
                yield chunk(piece)
                fake.sent += 1
                if fake.on_chunk is not None:
                    fake.on_chunk(fake.sent)
                if fake.cut_after is not None and fake.sent >= fake.cut_after:
                    raise httpx2.RemoteProtocolError("peer closed connection mid-stream")
            yield chunk(None, finish="stop")
            yield chunk(None, usage=True)
            yield b"data: [DONE]\n\n"
            fake.finished = True
        except (asyncio.CancelledError, GeneratorExit):
            fake.cancelled = True
            raise


class FakeOpenAI:
    """An OpenAI chat backend. By default it answers ``echo: <last user text>``; ``reply``
    (a string or a function of the request body) overrides that. Streams send one word per
    event, ``delay`` seconds apart."""

    def __init__(
        self,
        reply: str | Callable[[dict[str, Any]], str] | None = None,
        *,
        delay: float = 0.0,
        status: int = 200,
        error: dict[str, Any] | None = None,
    ) -> None:
        self.reply = reply
        self.delay = delay
        self.status = status
        self.error = error
        self.sent = 0
        self.latency = 0.0  # before the response starts
        self.delays: list[float] = []  # per-gap delays before the 2nd, 3rd, ... event
        self.cut_after: int | None = None
        self.on_chunk: Callable[[int], None] | None = None
        self.first_byte_at: float | None = None
        self.cancelled = False
        self.finished = False
        self.transport = SpecTransport("openai", self.handle)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [b for b in self.transport.bodies if isinstance(b, dict) and "messages" in b]

    def text_for(self, body: dict[str, Any]) -> str:
        if callable(self.reply):
            return self.reply(body)
        if self.reply is not None:
            return self.reply
        return "echo: " + last_user_text(body)

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/models"):
            data = [
                {"id": m, "object": "model", "created": 1, "owned_by": "me"}
                for m in ("gpt-a", "gpt-b")
            ]
            return httpx2.Response(200, json={"object": "list", "data": data})
        if self.status != 200:
            return httpx2.Response(
                self.status,
                json=self.error
                or {
                    "error": {
                        "message": "boom",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                },
            )
        body = json.loads(request.content)
        text = self.text_for(body)
        if self.latency:
            await asyncio.sleep(self.latency)
        if not body.get("stream"):
            return httpx2.Response(200, json=completion(text))
        words = [w + " " for w in text.split(" ")]
        words[-1] = words[-1][:-1]
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, stream=_Events(self, words)
        )


class FakeRegistry(registry.Registry):
    """The real registry, with every provider built on the fake's transport."""

    def __init__(self, transport: Any) -> None:
        super().__init__()
        self.transport = transport

    def provider(self, name: str, *, base_url: str | None = None, transport: Any = None) -> Any:
        return super().provider(name, base_url=base_url, transport=transport or self.transport)


@pytest.fixture
def ip() -> Iterator[Any]:
    """The shell with llm_magics freshly loaded and an empty user namespace."""
    shell = get_shell()
    _clear_namespace(shell)
    # %config writes into the shell's config, which a new LLMMagics would inherit.
    shell.config.pop("LLMMagics", None)
    shell.extension_manager.load_extension("llm_magics")
    try:
        yield shell
    finally:
        shell.extension_manager.unload_extension("llm_magics")
        shell.config.pop("LLMMagics", None)
        shell.rl_next_input = None
        _clear_namespace(shell)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    """An OpenAI key (a sentinel) and every provider routed to a FakeOpenAI."""
    backend = FakeOpenAI()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    SESSION.put(registry.Registry, FakeRegistry(backend.transport))
    return backend


def magics_of(shell: Any) -> Any:
    from llm_magics.notebook.magics import _loaded

    return _loaded[shell]


def outputs(captured: Any) -> list[dict[str, Any]]:
    """Display messages captured by IPython's capture_output, in order."""
    return [
        {"data": o.data, "transient": o.transient, "update": o.update} for o in captured.outputs
    ]
