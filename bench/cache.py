"""Response-cache benchmark: raw get/put rates, and a fully cached rerun vs the first run.

1. ``ResponseCache.put`` / ``get`` per second on a fresh directory (typical chat answers).
2. 10,000 distinct chat requests at concurrency 64 through ``client.achat`` against the local
   OpenAI-compatible server (``tests/support/server.py``, in its own process) with 50 ms
   latency: the first run (every request a miss, answered by the server and written to the
   cache), then the same 10,000 again (every one a hit). Target: the rerun >= 20x faster.

Medians of several rounds, each round on a fresh cache directory; ratios are measured within
the same round, because the machine is shared and noisy.

    python bench/cache.py [--requests 10000] [--concurrency 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import llm_magics as lm  # noqa: E402
from llm_magics._cache.store import ResponseCache  # noqa: E402
from llm_magics._core.types import Response, Usage  # noqa: E402
from llm_magics._runtime import loop as _loop  # noqa: E402
from tests.support.server import FakeOpenAIServer  # noqa: E402


def get_put_rates(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cache = ResponseCache(Path(tmp) / "c")
        answer = "A typical short answer of a few sentences. " * 8
        responses = [
            Response(f"{answer}{i}", "gpt-4o-mini", "openai", usage=Usage(120, 80), cost=1e-4)
            for i in range(n)
        ]
        keys = [f"{i:064x}" for i in range(n)]
        started = time.perf_counter()
        for key, response in zip(keys, responses, strict=True):
            cache.put(key, response)
        cache.flush()  # put() hands answers to the writer thread: count until they are on disk
        put_rate = n / (time.perf_counter() - started)
        started = time.perf_counter()
        for key in keys:
            assert cache.get(key) is not None
        get_rate = n / (time.perf_counter() - started)
        cache.close()
    return put_rate, get_rate


async def run_all(client: lm.Client, prompts: list[str], concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> Response:
        async with gate:
            return await client.achat(prompt)

    started = time.perf_counter()
    answers = await asyncio.gather(*(one(p) for p in prompts))
    elapsed = time.perf_counter() - started
    assert [a.text for a in answers] == [f"echo: {p}" for p in prompts]
    return elapsed


async def raw_httpx2(base_url: str, prompts: list[str], concurrency: int) -> float:
    """The same requests posted with a bare httpx2.AsyncClient: what the server allows."""
    import httpx2

    limits = httpx2.Limits(max_connections=256, max_keepalive_connections=128)
    async with httpx2.AsyncClient(limits=limits, timeout=60) as http:
        gate = asyncio.Semaphore(concurrency)

        async def one(prompt: str) -> None:
            async with gate:
                body = {"model": "fake-model", "messages": [{"role": "user", "content": prompt}]}
                reply = await http.post(f"{base_url}/chat/completions", json=body)
                reply.raise_for_status()

        await one("warm-up")
        started = time.perf_counter()
        await asyncio.gather(*(one(p) for p in prompts))
        return time.perf_counter() - started


def rerun_round(base_url: str, requests: int, concurrency: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LLM_MAGICS_CACHE_DIR"] = str(Path(tmp) / "cache")
        from llm_magics._core.session import SESSION

        SESSION.reset()
        lm.register("bench", base_url, api_key="sk-bench-not-a-secret")
        client = lm.client("bench:fake-model")
        _loop.run(run_all(client, ["warm-up"], 1))  # open a connection, as users' runs do
        prompts = [f"Question {i}: what is {i} plus one?" for i in range(requests)]
        first = _loop.run(run_all(client, prompts, concurrency))
        rerun = _loop.run(run_all(client, prompts, concurrency))
        assert client.cache is not None
        hits = client.cache.stats().hits
        client.cache.close()  # type: ignore[attr-defined]
    return first, rerun, hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--ops", type=int, default=5_000, help="entries for the get/put rates")
    args = parser.parse_args()

    rates = [get_put_rates(args.ops) for _ in range(args.rounds)]
    put = statistics.median(r[0] for r in rates)
    get = statistics.median(r[1] for r in rates)
    print(
        f"ResponseCache.put: {put:,.0f}/s   ResponseCache.get: {get:,.0f}/s   (median of {args.rounds})"
    )

    lm.reset_usage()
    results = []
    with FakeOpenAIServer(subprocess=True, latency=args.latency) as srv:
        for n in range(args.rounds):
            prompts = [f"raw {n} {i}" for i in range(args.requests)]
            raw = asyncio.run(raw_httpx2(srv.base_url, prompts, args.concurrency))
            first, rerun, hits = rerun_round(srv.base_url, args.requests, args.concurrency)
            results.append((first, rerun, raw))
            print(
                f"round {n + 1}: raw httpx2 {raw:.2f} s ({args.requests / raw:,.0f} req/s), "
                f"first run {first:.2f} s ({args.requests / first:,.0f} req/s), "
                f"cached rerun {rerun:.3f} s ({args.requests / rerun:,.0f} req/s), "
                f"{first / rerun:.1f}x, {hits} hits"
            )
        served = srv.stats().statuses.get(200, 0)
    first = statistics.median(r[0] for r in results)
    rerun = statistics.median(r[1] for r in results)
    raw = statistics.median(r[2] for r in results)
    ratio = statistics.median(r[0] / r[1] for r in results)
    floor = args.requests * args.latency / args.concurrency
    print(
        f"\n{args.requests:,} requests, concurrency {args.concurrency}, server latency "
        f"{args.latency * 1000:.0f} ms: raw httpx2 {raw:.2f} s, first run {first:.2f} s, "
        f"cached rerun {rerun:.3f} s; rerun {ratio:.1f}x faster than the first run "
        f"(median of {args.rounds}; target >= 20x)"
    )
    print(
        f"the latency floor of an uncached run (requests x latency / concurrency) is "
        f"{floor:.2f} s: the rerun is {floor / rerun:.1f}x faster than even that"
    )
    print(f"server answered {served:,} requests in total (the reruns sent none)")


if __name__ == "__main__":
    main()
