"""A real local OpenAI-compatible HTTP server for fault injection in tests and benchmarks.

It speaks enough of the OpenAI API to exercise everything around the wire format (the wire
format itself is proven against the providers' specs in tests/providers/):

* ``POST /v1/chat/completions``: JSON, or SSE streaming with a final usage chunk; the answer
  is derived from the prompt (``echo: <last user message>``), so a test can check that each
  row got its own answer;
* ``POST /v1/embeddings`` (floats or base64), ``GET /v1/models``;
* ``GET /_stats`` and ``POST /_reset`` for a server in another process.

Faults, all optional: a fixed ``latency``; per-key request limits over a sliding window
(``rpm_per_key`` / ``rpm``), answered with 429 + ``Retry-After`` / ``retry-after-ms``; every
request that arrives on a key before the Retry-After the server gave that key is recorded in
``stats().early`` (a client that honours Retry-After has none; requests already in flight
when the 429 left, i.e. within ``violation_grace`` real seconds of it, are not held against
the client; a server with a backlog can still count those, so the exact check is
:class:`SendLog`, on the client side); a random ``fail_rate`` of 500s (seeded); 401 for ``dead_keys`` (and for any key
not in ``valid_keys`` when given); a stream that drops its connection after
``drop_stream_after`` chunks.

Time: limits are counted on a virtual clock, ``time.monotonic() * time_scale``, so "60 RPM"
can be tested in a few real seconds (``time_scale=20``: a minute lasts 3 s). A client under
test uses the same scaled clock for its key pool; Retry-After values are in virtual seconds.

    with FakeOpenAIServer(latency=0.05, rpm_per_key={"k1": 30}, fail_rate=0.2, seed=1) as srv:
        lm.register("fake", srv.base_url, api_key="k1")
        ...
        srv.stats().per_key["k1"]

The server runs uvicorn on 127.0.0.1 and a free port, in a background thread (default) or in
a subprocess (``subprocess=True``: no GIL shared with the client, for benchmarks). It is
bounded: it stops when the ``with`` block ends, and by itself after ``max_lifetime`` seconds
(a subprocess also stops when its parent goes away).
"""

from __future__ import annotations

import array
import base64
import hashlib
import json
import math
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["FakeOpenAIServer", "SendLog", "ServerConfig", "ServerStats", "answer_for"]


@dataclass
class ServerConfig:
    latency: float = 0.0
    chunk_delay: float = 0.0
    rpm: int | None = None
    rpm_per_key: dict[str, int] = field(default_factory=dict)
    window: float = 60.0
    time_scale: float = 1.0
    retry_after: bool = True
    violation_grace: float = 0.25
    fail_rate: float = 0.0
    fail_status: int = 500
    seed: int = 0
    dead_keys: list[str] = field(default_factory=list)
    valid_keys: list[str] | None = None
    drop_stream_after: int | None = None
    stream_chunk_words: int = 2
    model: str = "fake-model"
    max_lifetime: float = 600.0


@dataclass
class ServerStats:
    """What the server saw. Times are on the server's virtual clock."""

    total: int = 0
    paths: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    per_key: dict[str, int] = field(default_factory=dict)
    accepted: dict[str, list[float]] = field(default_factory=dict)
    rate_limited: dict[str, list[float]] = field(default_factory=dict)
    early: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServerStats:
        data = dict(data)
        data["statuses"] = {int(k): v for k, v in data["statuses"].items()}
        return cls(**data)


def answer_for(body: dict[str, Any]) -> str:
    """The server's deterministic answer: ``echo: `` + the last user message's text."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(
                    str(p.get("text", "")) for p in content if p.get("type") == "text"
                )
            return f"echo: {content or ''}"
    return "echo: "


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


class _DropConnection(Exception):
    """Raised inside a streaming body: uvicorn then cuts the connection mid-response."""


class _State:
    def __init__(self, config: ServerConfig, answer: Callable[[dict[str, Any]], str]) -> None:
        self.config = config
        self.answer = answer
        self.lock = threading.Lock()
        self.random = random.Random(config.seed)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.stats = ServerStats()
            self.windows: dict[str, deque[float]] = {}
            self.deadline: dict[str, float] = {}
            self.episode_start: dict[str, float] = {}

    def clock(self) -> float:
        return time.monotonic() * self.config.time_scale

    def admit(self, path: str, key: str) -> tuple[int, dict[str, str], str] | None:
        """Count the request; None when it may proceed, else (status, headers, message)."""
        cfg = self.config
        with self.lock:
            stats = self.stats
            stats.total += 1
            stats.paths[path] = stats.paths.get(path, 0) + 1
            stats.per_key[key] = stats.per_key.get(key, 0) + 1
            if key in cfg.dead_keys or (cfg.valid_keys is not None and key not in cfg.valid_keys):
                return self._status(401, {}, "Incorrect API key provided.")
            limit = cfg.rpm_per_key.get(key, cfg.rpm)
            if limit is not None:
                now, real = self.clock(), time.monotonic()
                window = self.windows.setdefault(key, deque())
                while window and window[0] <= now - cfg.window:
                    window.popleft()
                deadline = self.deadline.get(key, -math.inf)
                if now < deadline and real > self.episode_start[key] + cfg.violation_grace:
                    stats.early.append({"key": key, "arrived": now, "retry_after_until": deadline})
                if len(window) >= limit:
                    wait = window[0] + cfg.window - now
                    if now >= deadline:
                        self.episode_start[key] = real
                    self.deadline[key] = max(deadline, now + wait)
                    stats.rate_limited.setdefault(key, []).append(now)
                    headers = {
                        "x-ratelimit-limit-requests": str(limit),
                        "x-ratelimit-remaining-requests": "0",
                    }
                    if cfg.retry_after:
                        headers["retry-after"] = str(math.ceil(wait))
                        headers["retry-after-ms"] = str(math.ceil(wait * 1000))
                    return self._status(429, headers, f"Rate limit reached: {limit} per window.")
                window.append(now)
            stats.accepted.setdefault(key, []).append(self.clock())
            if cfg.fail_rate and self.random.random() < cfg.fail_rate:
                return self._status(cfg.fail_status, {}, "The server had an error.")
            stats.statuses[200] = stats.statuses.get(200, 0) + 1
            return None

    def _status(self, status: int, headers: dict[str, str], message: str) -> Any:
        self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1
        return status, headers, message

    def snapshot(self) -> ServerStats:
        with self.lock:
            return ServerStats.from_json(json.loads(json.dumps(asdict(self.stats))))


def build_app(state: _State) -> Any:
    import asyncio

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    cfg = state.config

    def error(status: int, headers: dict[str, str], message: str) -> Response:
        kind = {401: "invalid_request_error", 429: "requests"}.get(status, "server_error")
        code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        return JSONResponse(body, status_code=status, headers=headers)

    def key_of(request: Request) -> str:
        auth = request.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else ""

    async def chat(request: Request) -> Response:
        refused = state.admit("/v1/chat/completions", key_of(request))
        body = await request.json()
        if refused is not None:
            return error(*refused)
        text = state.answer(body)
        model = body.get("model") or cfg.model
        prompt_tokens = sum(_tokens(json.dumps(m.get("content"))) for m in body["messages"])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": _tokens(text),
            "total_tokens": prompt_tokens + _tokens(text),
        }
        if cfg.latency:
            await asyncio.sleep(cfg.latency)
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            _stream(text, model, usage if include_usage else None),
            media_type="text/event-stream",
        )

    async def _stream(text: str, model: str, usage: dict[str, Any] | None) -> AsyncIterator[str]:
        words = text.split(" ")
        n = max(cfg.stream_chunk_words, 1)
        pieces = [" ".join(words[i : i + n]) + " " for i in range(0, len(words), n)]
        pieces[-1] = pieces[-1][:-1]

        def event(choices: list[dict[str, Any]], **extra: Any) -> str:
            chunk = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": choices,
                **extra,
            }
            return f"data: {json.dumps(chunk)}\n\n"

        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
        for i, piece in enumerate(pieces):
            if cfg.drop_stream_after is not None and i >= cfg.drop_stream_after:
                raise _DropConnection
            if cfg.chunk_delay:
                await asyncio.sleep(cfg.chunk_delay)
            yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if usage is not None:
            yield event([], usage=usage)
        yield "data: [DONE]\n\n"

    async def embeddings(request: Request) -> Response:
        refused = state.admit("/v1/embeddings", key_of(request))
        body = await request.json()
        if refused is not None:
            return error(*refused)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if cfg.latency:
            await asyncio.sleep(cfg.latency)
        data = []
        for i, text in enumerate(inputs):
            digest = hashlib.sha256(str(text).encode()).digest()
            vector = [(b - 128) / 128 for b in digest[:8]]
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(array.array("f", vector).tobytes()).decode()
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        used = sum(_tokens(str(t)) for t in inputs)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model") or cfg.model,
                "usage": {"prompt_tokens": used, "total_tokens": used},
            }
        )

    async def models(request: Request) -> Response:
        refused = state.admit("/v1/models", key_of(request))
        if refused is not None:
            return error(*refused)
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": cfg.model, "object": "model", "created": 0, "owned_by": "test"}],
            }
        )

    async def stats(request: Request) -> Response:
        return JSONResponse(asdict(state.snapshot()))

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/_stats", stats, methods=["GET"]),
            Route("/_reset", reset, methods=["POST"]),
        ]
    )


def _uvicorn_server(app: Any) -> Any:
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level="critical",
        access_log=False,
        lifespan="off",
        backlog=2048,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class FakeOpenAIServer:
    """The server as a context manager; see the module docstring for the options."""

    def __init__(
        self,
        *,
        subprocess: bool = False,
        answer: Callable[[dict[str, Any]], str] | None = None,
        **options: Any,
    ) -> None:
        self.config = ServerConfig(**options)
        if subprocess and answer is not None:
            raise ValueError("a custom answer= needs the in-process server (subprocess=False)")
        self._subprocess = subprocess
        self._answer = answer or answer_for
        self.port = 0
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._state: _State | None = None
        self._process: Any = None
        self._timer: threading.Timer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI-compatible client takes as its base URL (ends in /v1)."""
        return f"{self.url}/v1"

    def clock(self) -> float:
        """The server's virtual clock: hand it to a KeyPool under test."""
        return time.monotonic() * self.config.time_scale

    def __enter__(self) -> FakeOpenAIServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._subprocess:
            self._start_process()
        else:
            self._start_thread()

    def _start_thread(self) -> None:
        self._state = _State(self.config, self._answer)
        self._server = _uvicorn_server(build_app(self._state))
        sock = _bind()
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-openai", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.005)
        self._timer = threading.Timer(self.config.max_lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()

    def _start_process(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, json.dumps(asdict(self.config))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self._process.stdout.readline()
        if not line.startswith("PORT "):
            self._process.kill()
            raise RuntimeError(f"the fake OpenAI server did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.should_exit = True
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(10)
        if self._process is not None:
            if self._process.stdin:
                self._process.stdin.close()  # the child exits when its stdin closes
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stdout:
                self._process.stdout.close()

    def stats(self) -> ServerStats:
        if self._state is not None:
            return self._state.snapshot()
        with urllib.request.urlopen(f"{self.url}/_stats", timeout=10) as reply:
            return ServerStats.from_json(json.loads(reply.read()))

    def reset(self) -> None:
        if self._state is not None:
            self._state.reset()
            return
        request = urllib.request.Request(f"{self.url}/_reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    @property
    def request_count(self) -> int:
        return self.stats().total

    @property
    def requests_per_key(self) -> dict[str, int]:
        return self.stats().per_key

    def status_counts(self) -> Counter[int]:
        return Counter(self.stats().statuses)


class SendLog:
    """Client-side truth for "no request sent before its Retry-After": when the client under
    test handed each request to its provider, on which key, and every 429 its key pool was
    told about (and until when), on ``clock`` (the server's, when it is sped up).

    The server's own ``stats().early`` cannot tell a request sent too early from one that
    was already sent (or queued in the server) when the 429 left; this can."""

    def __init__(self, client: Any, clock: Callable[[], float]) -> None:
        self.sends: list[tuple[float, str]] = []
        self.cooldowns: list[tuple[float, str, float]] = []
        chat, rate_limited = client.provider.chat, client.keys.rate_limited

        async def logged_chat(request: Any, key: Any, timeouts: Any) -> Any:
            self.sends.append((clock(), key.hint))
            return await chat(request, key, timeouts)

        def logged_rate_limited(key: Any, retry_after: float | None) -> None:
            now = clock()
            self.cooldowns.append((now, key.hint, now + (retry_after or 0.0)))
            rate_limited(key, retry_after)

        client.provider.chat = logged_chat
        client.keys.rate_limited = logged_rate_limited

    def sent_before_retry_after(self) -> list[tuple[float, str]]:
        """Requests sent on a key after its 429 arrived and before its Retry-After passed."""
        by_key: dict[str, list[tuple[float, float]]] = {}
        for learned, hint, until in self.cooldowns:
            by_key.setdefault(hint, []).append((learned, until))
        return [(t, k) for t, k in self.sends if any(a <= t < b for a, b in by_key.get(k, ()))]


def _serve_in_this_process(config_json: str) -> None:
    config = ServerConfig(**json.loads(config_json))
    server = _uvicorn_server(build_app(_State(config, answer_for)))
    sock = _bind()

    def watch_parent() -> None:
        sys.stdin.read()  # returns at EOF: the parent closed the pipe or went away
        server.should_exit = True

    threading.Thread(target=watch_parent, daemon=True).start()
    timer = threading.Timer(config.max_lifetime, lambda: setattr(server, "should_exit", True))
    timer.daemon = True
    timer.start()

    def announce() -> None:
        while not server.started:
            time.sleep(0.005)
        print(f"PORT {sock.getsockname()[1]}", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    server.run(sockets=[sock])


if __name__ == "__main__":
    _serve_in_this_process(sys.argv[1])
