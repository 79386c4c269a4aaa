"""A real ``redis-server`` for tests: started on a free loopback port with persistence off
(``--save ""``, no AOF), stopped at the end. Debian's ``redis-server`` package provides it
(``scripts/install.sh`` installs it); a machine without it fails the tests that need it
with that instruction, rather than skipping them."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["RedisServer", "free_port", "redis_server"]


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process; ``url`` is ``redis://127.0.0.1:PORT/0``."""

    def __init__(self, workdir: Path, *, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: run `bash scripts/install.sh` (it installs "
                "Debian's redis-server) or `apt-get install redis-server`"
            )
        self.port = free_port()
        self.password = password
        args = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no",
        ]  # fmt: skip
        if password:
            args += ["--requirepass", password]
        self._log = workdir / f"redis-{self.port}.log"
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._log.read_text(errors="replace")
                raise RuntimeError(f"redis-server exited at start: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start within 15 s")

    def flushall(self) -> None:
        import redis

        redis.Redis.from_url(self.url).flushall()

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)


@contextmanager
def redis_server(workdir: Path, **options: str) -> Iterator[RedisServer]:
    server = RedisServer(workdir, **options)
    try:
        yield server
    finally:
        server.stop()
