"""Per-request overhead of llm_magics over raw httpx2, and import cost.

1,000 chat requests at concurrency 64 against a local server with 50 ms latency (a separate
process), for llm_magics' async client and for a raw httpx2.AsyncClient posting the same JSON,
alternating who goes first, several rounds. Prints the median requests/s and client CPU ms/request of each and
their ratios (targets: throughput >= 0.9x raw, CPU <= 1.3x raw). Then the wall time of
``import llm_magics`` over a bare interpreter (target < 150 ms), median of repeated runs.

    python bench/overhead.py [--requests 1000] [--concurrency 64] [--rounds 5]
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
from pathlib import Path

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
    args = parser.parse_args()
    os.environ.setdefault("LLM_MAGICS_CACHE_DIR", "/tmp/llm_magics_bench_cache")

    server, base_url = start_server(args.latency_ms)
    try:
        results: dict[str, list[tuple[float, float]]] = {"raw httpx2": [], "llm_magics": []}
        runners = {"raw httpx2": run_raw, "llm_magics": run_llm_magics}
        for r in range(args.rounds):
            # Alternate who goes first, so neither always gets the warmer machine.
            for name in runners if r % 2 == 0 else reversed(runners):
                results[name].append(
                    asyncio.run(runners[name](base_url, args.requests, args.concurrency))
                )
    finally:
        server.terminate()
        server.wait(5)

    print(
        f"{args.requests} chat requests, concurrency {args.concurrency}, server latency {args.latency_ms:g} ms, "
        f"{args.rounds} rounds (medians)"
    )
    summary = {}
    for name, rows in results.items():
        rps = statistics.median(args.requests / wall for wall, _ in rows)
        cpu_ms = statistics.median(cpu / args.requests * 1000 for _, cpu in rows)
        summary[name] = (rps, cpu_ms)
        print(f"  {name:<11} {rps:8.1f} req/s   {cpu_ms:6.3f} ms CPU/request")
    (raw_rps, raw_cpu), (lm_rps, lm_cpu) = summary["raw httpx2"], summary["llm_magics"]
    # The machine's speed drifts; a round's two runs are back to back, so per-round ratios
    # cancel most of the drift.
    pairs = list(zip(results["llm_magics"], results["raw httpx2"], strict=True))
    speed = [raw[0] / ours[0] for ours, raw in pairs]
    cpu = [ours[1] / raw[1] for ours, raw in pairs]
    print(
        f"  throughput ratio llm_magics/raw: {statistics.median(speed):.3f} median of per-round "
        f"ratios ({', '.join(f'{x:.2f}' for x in speed)}); ratio of medians "
        f"{lm_rps / raw_rps:.3f}  (target >= 0.9)"
    )
    print(
        f"  CPU ratio        llm_magics/raw: {statistics.median(cpu):.3f} median of per-round "
        f"ratios; ratio of medians {lm_cpu / raw_cpu:.3f}  (target <= 1.3)"
    )

    bare, imported = import_cost(11)
    print(
        f"import llm_magics: {1000 * (imported - bare):.1f} ms over a bare interpreter "
        f"({1000 * bare:.0f} ms -> {1000 * imported:.0f} ms, median of 11; target < 150 ms)"
    )


if __name__ == "__main__":
    main()
