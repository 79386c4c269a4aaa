"""Serve the embedded model over HTTP as an OpenAI-compatible API, for other tools.

    server = lm.serve_local(port=8000)           # python -m llama_cpp.server, same GGUF
    lm.register("llamacpp", base_url=server.base_url)
    lm.client("llamacpp:smollm2").chat("Hi")
    server.stop()                                # or: with lm.serve_local() as server: ...

The server is llama-cpp-python's own ``llama_cpp.server`` (from the ``[local]`` extra), started
in a subprocess with the GGUF the ``local`` provider uses (``LLM_MAGICS_LOCAL_MODEL`` or the
bundled SmolLM2). Its log goes to a file (``server.log_path``, removed by ``stop()``), never
into the notebook.
Servers still running when the interpreter exits are stopped.

Thread safety: a :class:`LocalServer` may be stopped from any thread; stopping twice is fine.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import weakref
from pathlib import Path
from types import TracebackType

from .._core.errors import ConfigError
from . import model as _local_model

__all__ = ["LocalServer", "serve_local"]

_running: weakref.WeakSet[LocalServer] = weakref.WeakSet()
# Modules llama_cpp.server imports that the plain llama-cpp-python install lacks.
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")


class LocalServer:
    """A running ``llama_cpp.server``: ``base_url`` (ends in ``/v1``), ``model`` (the name it
    answers to), ``process``, ``log_path``; ``stop()`` ends it. A context manager."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        host: str,
        port: int,
        model: str,
        log_path: Path,
    ) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.model = model
        self.log_path = log_path
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (kill it if it has not exited after ``timeout`` seconds)."""
        with self._lock:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout)
            _running.discard(self)
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def log_tail(self, lines: int = 15) -> str:
        """The last lines the server wrote (its log file), for error messages."""
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited ({self.process.returncode})"
        return f"LocalServer({self.base_url!r}, model={self.model!r}, {state})"


def serve_local(
    port: int | None = None,
    host: str = "127.0.0.1",
    *,
    model: str = "smollm2",
    n_ctx: int = _local_model.CHAT_CONTEXT,
    timeout: float = 60.0,
) -> LocalServer:
    """Start ``python -m llama_cpp.server`` for the embedded model and wait until it answers.

    ``port=None`` picks a free port. ``model`` is the name the server answers to (its
    ``/v1/models`` id). Raises ConfigError when the ``[local]`` extra is missing, the model
    file is unusable, or the server does not come up within ``timeout`` seconds (the message
    quotes its log).
    """
    for module in _SERVER_MODULES:
        if importlib.util.find_spec(module) is None:
            _local_model.require(module)  # raises the install hint
    path = _local_model.gguf_path()
    _local_model.check_gguf(path)
    chosen = port if port is not None else _free_port(host)
    fd, log_name = tempfile.mkstemp(prefix="llm_magics-llama-server-", suffix=".log")
    log_path = Path(log_name)
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(path),
        "--model_alias",
        model,
        "--host",
        host,
        "--port",
        str(chosen),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(_local_model.cpu_threads()),
    ]
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    server = LocalServer(process, host, chosen, model, log_path)
    _running.add(server)
    try:
        _wait_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(server: LocalServer, timeout: float) -> None:
    """Poll ``/v1/models`` until it answers 200, the process exits, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    url = f"{server.base_url}/models"
    delay = 0.05
    while True:
        if not server.running:
            raise ConfigError(
                f"llama_cpp.server exited with code {server.process.returncode} before it "
                f"answered on {server.base_url} (port in use? unusable model file?). Its log "
                f"({server.log_path}):\n{server.log_tail()}",
                provider="local",
            )
        # Refused or reset while it starts; OSError covers URLError and HTTPError.
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                return
        if time.monotonic() >= deadline:
            raise ConfigError(
                f"llama_cpp.server did not answer on {url} within {timeout:g} s (timeout=). "
                f"Its log ({server.log_path}):\n{server.log_tail()}",
                provider="local",
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


@atexit.register
def _stop_all() -> None:
    for server in list(_running):
        with contextlib.suppress(Exception):
            server.stop(timeout=5)
