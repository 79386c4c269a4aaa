"""Time from a streaming server's first byte to the first display update of a %%llm cell.

A small OpenAI-compatible SSE server runs in its own process (no GIL shared with the client):
it waits ``--ttft`` ms, then writes the response head and the first token in one write,
recording ``time.perf_counter()`` just before (CLOCK_MONOTONIC on Linux: comparable across
processes), then one token every ``--token`` ms. In the same run, over the same server:

  raw httpx2   a bare httpx2 stream: first byte -> first content line parsed
  lm stream    ``client.stream(...)``: first byte -> first delta in the caller's thread
  %%llm        a real InteractiveShell: first byte -> first display update of the answer
               (the placeholder shown before the request does not count)

Medians and p90 of ``--runs`` requests each, interleaved; the %%llm overhead over raw httpx2
is reported alongside. Target: %%llm first update < 20 ms after the first byte.

    python bench/stream_latency.py [--runs 15] [--ttft 50] [--token 20] [--tokens 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

TARGET = 0.020


# --- the server (a subprocess) ---------------------------------------------------------------


def serve(ttft: float, token: float, tokens: int) -> None:
    first_bytes: list[float] = []

    def event(text: str | None, finish: str | None = None, usage: bool = False) -> bytes:
        chunk: dict[str, Any] = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "bench",
            "choices": []
            if usage
            else [
                {
                    "index": 0,
                    "delta": {"content": text} if text is not None else {},
                    "finish_reason": finish,
                }
            ],
        }
        if usage:
            chunk["usage"] = {
                "prompt_tokens": 9,
                "completion_tokens": tokens,
                "total_tokens": 9 + tokens,
            }
        data = f"data: {json.dumps(chunk)}\n\n".encode()
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line = head.split(b"\r\n", 1)[0].decode()
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                if request_line.startswith("GET /_first_bytes"):
                    body = json.dumps(first_bytes).encode()
                    first_bytes.clear()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                        + str(len(body)).encode()
                        + b"\r\n\r\n"
                        + body
                    )
                    await writer.drain()
                    continue
                await asyncio.sleep(ttft)
                head_out = (
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n"
                )
                first_bytes.append(time.perf_counter())
                writer.write(head_out + event("Hello"))
                await writer.drain()
                for i in range(1, tokens):
                    await asyncio.sleep(token)
                    writer.write(event(f" w{i}"))
                    await writer.drain()
                writer.write(event(None, "stop") + event(None, usage=True))
                done = b"data: [DONE]\n\n"
                writer.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        print(f"ready {port}", flush=True)

        def watch_parent() -> None:
            sys.stdin.read()  # EOF when the parent goes away
            os._exit(0)

        threading.Thread(target=watch_parent, daemon=True).start()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --- the client side -------------------------------------------------------------------------


def first_bytes(base: str) -> list[float]:
    import urllib.request

    with urllib.request.urlopen(f"{base}/_first_bytes") as response:
        result: list[float] = json.loads(response.read())
        return result


def raw_httpx2(base: str) -> float:
    import httpx2

    body = {"model": "bench", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with (
        httpx2.Client() as client,
        client.stream("POST", f"{base}/v1/chat/completions", json=body) as r,
    ):
        lines = r.iter_lines()
        for line in lines:
            if line.startswith("data:") and '"content"' in line:
                seen = time.perf_counter()
                break
        for _ in lines:
            pass
    return seen - first_bytes(base)[0]


def lm_stream(base: str, n: int) -> float:
    import llm_magics as lm

    client = lm.client("bench:m", cache=False)
    stream = client.stream(f"hi {n}")
    seen = 0.0
    for _delta in stream:
        seen = seen or time.perf_counter()
    return seen - first_bytes(base)[0]


class _Recorder:
    """A display publisher that notes when the answer's first update is published."""

    def __init__(self) -> None:
        from IPython.core.displaypub import CapturingDisplayPublisher

        class Publisher(CapturingDisplayPublisher):
            first_update: float = 0.0

            def publish(self, data: Any, *args: Any, update: bool = False, **kwargs: Any) -> None:
                if update and not self.first_update:
                    self.first_update = time.perf_counter()
                super().publish(data, *args, update=update, **kwargs)

        self.publisher = Publisher()


def magic(shell: Any, base: str, n: int) -> float:
    recorder = _Recorder()
    original, shell.display_pub = shell.display_pub, recorder.publisher
    try:
        shell.run_cell_magic("llm", "bench:m --no-cache", f"hi {n}")
    finally:
        shell.display_pub = original
    return recorder.publisher.first_update - first_bytes(base)[0]


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--ttft", type=float, default=50, help="ms before the first token")
    parser.add_argument("--token", type=float, default=20, help="ms between tokens")
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.ttft / 1e3, args.token / 1e3, args.tokens)
        return

    server = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            "--ttft",
            str(args.ttft),
            "--token",
            str(args.token),
            "--tokens",
            str(args.tokens),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = server.stdout.readline().split()
        base = f"http://127.0.0.1:{ready[1]}"

        from IPython.core.interactiveshell import InteractiveShell

        import llm_magics as lm

        os.environ["LLM_MAGICS_CACHE_DIR"] = tempfile.mkdtemp(prefix="llm-bench-")
        lm.register("bench", f"{base}/v1", default_model="m")
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "llm_magics")
        shell.run_line_magic("config", "LLMMagics.show_usage = False")

        raw_httpx2(base), lm_stream(base, -1), magic(shell, base, -1)  # warm-up
        times: dict[str, list[float]] = {"raw httpx2": [], "lm stream": [], "%%llm": []}
        for n in range(args.runs):
            times["raw httpx2"].append(raw_httpx2(base))
            times["lm stream"].append(lm_stream(base, n))
            times["%%llm"].append(magic(shell, base, n))
    finally:
        server.terminate()
        server.wait(5)

    print(
        f"first byte -> first visible token, {args.runs} requests each, interleaved "
        f"(server: {args.ttft:.0f} ms to first token, {args.token:.0f} ms per token)"
    )
    print(f"  {'path':12s} {'median ms':>10s} {'p90 ms':>8s}")
    for name, values in times.items():
        print(f"  {name:12s} {statistics.median(values) * 1e3:10.2f} {p90(values) * 1e3:8.2f}")
    magic_med = statistics.median(times["%%llm"])
    overhead = magic_med - statistics.median(times["raw httpx2"])
    print(f"  %%llm over raw httpx2: {overhead * 1e3:+.2f} ms (median)")
    verdict = "PASS" if magic_med < TARGET else "FAIL"
    print(
        f"{verdict}: first display update {magic_med * 1e3:.1f} ms after the first byte "
        f"(target < {TARGET * 1e3:.0f} ms)"
    )


if __name__ == "__main__":
    main()
