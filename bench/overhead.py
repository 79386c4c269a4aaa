"""Per-request overhead of llm_magics over the raw HTTP clients, and import cost.

Two operating points, each against a local OpenAI-compatible server in a separate process:

1. the provider is the bottleneck: 1,000 chat requests at concurrency 64, 50 ms latency;
2. the client is the bottleneck: the same at concurrency 256 and no latency, where what counts
   is requests per CPU-second of the client.

Contenders, alternating who goes first each round: a raw ``httpx2.AsyncClient`` posting the
same JSON, a raw ``aiohttp.ClientSession``, llm_magics' ``achat`` on its default transport
(aiohttp under httpx2) and with ``LLM_MAGICS_HTTP=httpx2``. Prints medians of requests/s and
client CPU ms/request, and per-round ratios against raw httpx2 (targets at point 1:
throughput >= 1.0x, CPU <= 0.6x). Then the wall time of ``import llm_magics`` over a bare
interpreter (target < 150 ms), median of repeated runs.

    python bench/overhead.py [--requests 1000] [--concurrency 64] [--rounds 5] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_latency_server.py"), str(port), str(latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError("benchmark server did not start")
    return proc, f"http://127.0.0.1:{port}/v1"


def body(i: int) -> dict[str, object]:
    return {"model": "bench", "messages": [{"role": "user", "content": f"Question number {i}?"}]}


async def run_raw(base_url: str, n: int, concurrency: int) -> tuple[float, float]:
    import httpx2

    limits = httpx2.Limits(max_connections=256, max_keepalive_connections=128, keepalive_expiry=60)
    async with httpx2.AsyncClient(limits=limits, timeout=60) as client:
        sem = asyncio.Semaphore(concurrency)
        headers = {"Authorization": "Bearer sk-bench"}

        async def one(i: int) -> str:
            async with sem:
                r = await client.post(f"{base_url}/chat/completions", json=body(i), headers=headers)
                r.raise_for_status()
                return str(r.json()["choices"][0]["message"]["content"])

        await one(-1)  # open a connection before timing, as the other side does
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - wall, time.process_time() - cpu


async def run_raw_aiohttp(base_url: str, n: int, concurrency: int) -> tuple[float, float]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector) as session:
        sem = asyncio.Semaphore(concurrency)
        headers = {"Authorization": "Bearer sk-bench"}

        async def one(i: int) -> str:
            async with (
                sem,
                session.post(f"{base_url}/chat/completions", json=body(i), headers=headers) as r,
            ):
                r.raise_for_status()
                return str((await r.json())["choices"][0]["message"]["content"])

        await one(-1)
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - wall, time.process_time() - cpu


async def run_llm_magics(base_url: str, n: int, concurrency: int) -> tuple[float, float]:
    import llm_magics as lm

    lm.register("bench", base_url, api_key="sk-bench")
    client = lm.client("bench:bench", cache=False)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with sem:
            r = await client.achat(f"Question number {i}?")
            return r.text

    await one(-1)
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - wall, time.process_time() - cpu


def with_http(stack: str, run: Runner) -> Runner:
    """``run`` with LLM_MAGICS_HTTP set (each asyncio.run is a new loop: a new pooled client)."""

    async def switched(base_url: str, n: int, concurrency: int) -> tuple[float, float]:
        os.environ["LLM_MAGICS_HTTP"] = stack
        return await run(base_url, n, concurrency)

    return switched


Runner = Callable[[str, int, int], Coroutine[Any, Any, tuple[float, float]]]
RUNNERS: dict[str, Runner] = {
    "raw httpx2": run_raw,
    "raw aiohttp": run_raw_aiohttp,
    "llm_magics": with_http("aiohttp", run_llm_magics),
    "llm_magics httpx2": with_http("httpx2", run_llm_magics),
}
BASELINE = "raw httpx2"


def measure(latency_ms: float, n: int, concurrency: int, rounds: int) -> dict[str, list[Sample]]:
    server, base_url = start_server(latency_ms)
    results: dict[str, list[Sample]] = {name: [] for name in RUNNERS}
    try:
        names = list(RUNNERS)
        for r in range(rounds):
            # Rotate who goes first, so no contender always gets the warmer machine.
            for name in names[r % len(names) :] + names[: r % len(names)]:
                results[name].append(asyncio.run(RUNNERS[name](base_url, n, concurrency)))
    finally:
        server.terminate()
        server.wait(5)
    return results


Sample = tuple[float, float]  # (wall seconds, client CPU seconds) of one run


def report(title: str, results: dict[str, list[Sample]], n: int) -> None:
    print(title)
    base = results[BASELINE]
    for name, rows in results.items():
        rps = statistics.median(n / wall for wall, _ in rows)
        cpu_ms = statistics.median(cpu / n * 1000 for _, cpu in rows)
        per_cpu_s = statistics.median(n / cpu for _, cpu in rows)
        line = f"  {name:<18} {rps:8.1f} req/s  {cpu_ms:6.3f} ms CPU/request  {per_cpu_s:7.0f} req/CPU-s"
        if name != BASELINE:
            # A round's runs are back to back, so per-round ratios cancel most of the drift.
            speed = [b[0] / o[0] for o, b in zip(rows, base, strict=True)]
            cpu = [o[1] / b[1] for o, b in zip(rows, base, strict=True)]
            line += (
                f"\n  {'':<18} vs raw httpx2: throughput {statistics.median(speed):.3f}x "
                f"({', '.join(f'{x:.2f}' for x in speed)}), CPU {statistics.median(cpu):.3f}x "
                f"({', '.join(f'{x:.2f}' for x in cpu)})"
            )
        print(line)


def import_cost(runs: int) -> tuple[float, float]:
    def timed(code: str) -> float:
        samples = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            samples.append(time.perf_counter() - t)
        return statistics.median(samples)

    return timed("pass"), timed("import llm_magics")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--client-bound-concurrency", type=int, default=256)
    args = parser.parse_args()
    os.environ.setdefault("LLM_MAGICS_CACHE_DIR", "/tmp/llm_magics_bench_cache")

    n, rounds = args.requests, args.rounds
    report(
        f"1. provider-bound: {n} chat requests, concurrency {args.concurrency}, server latency "
        f"{args.latency_ms:g} ms, {rounds} rounds (medians; targets for llm_magics: "
        "throughput >= 1.0x, CPU <= 0.6x raw httpx2)",
        measure(args.latency_ms, n, args.concurrency, rounds),
        n,
    )
    c2 = args.client_bound_concurrency
    report(
        f"2. client-bound: {n} chat requests, concurrency {c2}, no server latency, {rounds} rounds "
        "(medians; req/CPU-s is what counts here)",
        measure(0.0, n, c2, rounds),
        n,
    )

    bare, imported = import_cost(11)
    print(
        f"import llm_magics: {1000 * (imported - bare):.1f} ms over a bare interpreter "
        f"({1000 * bare:.0f} ms -> {1000 * imported:.0f} ms, median of 11; target < 150 ms)"
    )


if __name__ == "__main__":
    main()
