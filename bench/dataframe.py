"""``df.llm.map`` at scale against raw httpx2 and litellm, in one run, on the same server.

10,000 rows (unique prompts) at concurrency 64 against a local OpenAI-compatible server with
50 ms latency (``_latency_server.py``, a separate process). Each contender runs in its own
fresh interpreter (so its peak RSS is its own and no connection pool is shared), in
alternating rounds:

* ``raw httpx2``: an ``httpx2.AsyncClient`` posting the same JSON bodies under a semaphore;
* ``df.llm.map``: as users run it (response cache on, a fresh cache directory per round);
  then the same call again, answered entirely from the cache (the "cached rerun");
* ``df.llm.map cache=False``: the engine without the disk cache;
* ``litellm``: ``litellm.acompletion`` under a semaphore, when litellm is installed.

Prints medians of rows/s, CPU ms per row, peak RSS, the cached rerun time, each round's
rows/s, and the ratios: the median of per-round ratios (a round's runs are back to back, so
the machine's drift between rounds cancels) and the ratio of medians
(targets: df.llm.map >= 0.9x raw httpx2, >= 2x litellm).

    python bench/dataframe.py [--rows 10000] [--concurrency 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from overhead import start_server  # noqa: E402


def prompt(i: int) -> str:
    return f"Question number {i}: what is {i} plus one?"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- contenders (each runs in a child process) ---------------------------------------------


async def raw_httpx2(base_url: str, rows: int, concurrency: int) -> dict[str, Any]:
    import httpx2

    limits = httpx2.Limits(max_connections=256, max_keepalive_connections=128, keepalive_expiry=60)
    async with httpx2.AsyncClient(limits=limits, timeout=60) as client:
        sem = asyncio.Semaphore(concurrency)
        headers = {"Authorization": "Bearer sk-bench"}

        async def one(text: str) -> str:
            async with sem:
                body = {"model": "bench", "messages": [{"role": "user", "content": text}]}
                r = await client.post(f"{base_url}/chat/completions", json=body, headers=headers)
                r.raise_for_status()
                return str(r.json()["choices"][0]["message"]["content"])

        await one("warm-up")  # open a connection before timing, as the others do
        prompts = [prompt(i) for i in range(rows)]
        cpu, wall = time.process_time(), time.perf_counter()
        answers = await asyncio.gather(*(one(p) for p in prompts))
        assert len(answers) == rows
        return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def llm_map(base_url: str, rows: int, concurrency: int, cache: bool) -> dict[str, Any]:
    import pandas as pd

    import llm_magics as lm

    lm.register("bench", base_url, api_key="sk-bench")
    lm.client("bench:bench").chat("warm-up", cache=False)
    frame = pd.DataFrame({"q": [prompt(i) for i in range(rows)]})
    options = {"model": "bench:bench", "concurrency": concurrency, "progress": False}
    cpu, wall = time.process_time(), time.perf_counter()
    out = frame.llm.map("{q}", cache=cache, **options)
    result = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    assert out["llm_error"].isna().all() and out["llm"].notna().all(), out["llm_error"].dropna()
    if cache:
        start = time.perf_counter()
        again = frame.llm.map("{q}", **options)
        result["rerun"] = time.perf_counter() - start
        assert again["llm"].equals(out["llm"])
    return result


async def litellm_acompletion(base_url: str, rows: int, concurrency: int) -> dict[str, Any]:
    import litellm

    sem = asyncio.Semaphore(concurrency)

    async def one(text: str) -> str:
        async with sem:
            r = await litellm.acompletion(
                model="openai/bench",
                messages=[{"role": "user", "content": text}],
                api_base=base_url,
                api_key="sk-bench",
            )
            return str(r.choices[0].message.content)

    await one("warm-up")
    prompts = [prompt(i) for i in range(rows)]
    cpu, wall = time.process_time(), time.perf_counter()
    answers = await asyncio.gather(*(one(p) for p in prompts))
    assert len(answers) == rows
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def child(name: str, base_url: str, rows: int, concurrency: int) -> None:
    if name == "raw":
        result = asyncio.run(raw_httpx2(base_url, rows, concurrency))
    elif name == "llm":
        result = llm_map(base_url, rows, concurrency, cache=True)
    elif name == "llm-nocache":
        result = llm_map(base_url, rows, concurrency, cache=False)
    elif name == "litellm":
        result = asyncio.run(litellm_acompletion(base_url, rows, concurrency))
    else:
        raise SystemExit(f"unknown contender {name}")
    result["rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


# --- the driver ----------------------------------------------------------------------------

LABELS = {
    "raw": "raw httpx2",
    "llm": "df.llm.map",
    "llm-nocache": "df.llm.map cache=False",
    "litellm": "litellm acompletion",
}


def run_child(name: str, base_url: str, rows: int, concurrency: int) -> dict[str, Any]:
    env = dict(os.environ, LLM_MAGICS_CACHE_DIR=tempfile.mkdtemp(prefix="llm-bench-cache-"))
    proc = subprocess.run(
        [sys.executable, __file__, "--child", name, base_url, str(rows), str(concurrency)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    subprocess.run(["rm", "-rf", env["LLM_MAGICS_CACHE_DIR"]], check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def has_litellm() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import litellm"], capture_output=True)
    return probe.returncode == 0


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()

    names = ["raw", "llm", "llm-nocache"]
    if has_litellm():
        names.append("litellm")
    server, base_url = start_server(args.latency_ms)
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    try:
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else reversed(names):
                results[name].append(run_child(name, base_url, args.rows, args.concurrency))
    finally:
        server.terminate()
        server.wait(5)

    print(
        f"{args.rows:,} rows, concurrency {args.concurrency}, server latency "
        f"{args.latency_ms:g} ms, {args.rounds} rounds (medians; each run in a fresh process)"
    )
    rps: dict[str, float] = {}
    for name in names:
        runs = results[name]
        rps[name] = statistics.median(args.rows / r["wall"] for r in runs)
        cpu_ms = statistics.median(r["cpu"] / args.rows * 1000 for r in runs)
        rss = statistics.median(r["rss_mb"] for r in runs)
        print(
            f"  {LABELS[name]:<24} {rps[name]:8.1f} rows/s  {cpu_ms:6.3f} ms CPU/row  "
            f"peak RSS {rss:6.1f} MB"
        )
    for r in range(args.rounds):
        line = ", ".join(f"{LABELS[n]} {args.rows / results[n][r]['wall']:.0f}" for n in names)
        print(f"  round {r + 1} rows/s: {line}")
    reruns = [r["rerun"] for r in results["llm"]]
    print(
        f"  cached rerun of df.llm.map: {statistics.median(reruns):.2f} s "
        f"({args.rows / statistics.median(reruns):,.0f} rows/s)"
    )

    def ratio(name: str, baseline: str) -> str:
        # The machine's speed drifts between rounds; a round's contenders run back to back,
        # so the median of per-round ratios is the steadier figure.
        pairs = zip(results[name], results[baseline], strict=True)
        per_round = [b["wall"] / a["wall"] for a, b in pairs]
        return (
            f"{statistics.median(per_round):.3f} (median of per-round ratios "
            f"{', '.join(f'{x:.2f}' for x in per_round)}; ratio of medians "
            f"{rps[name] / rps[baseline]:.3f})"
        )

    print(f"  df.llm.map / raw httpx2:       {ratio('llm', 'raw')}  target >= 1.0")
    print(f"  df.llm.map cache=False / raw:  {ratio('llm-nocache', 'raw')}")
    if "litellm" in rps:
        print(f"  df.llm.map / litellm:          {ratio('llm', 'litellm')}  target >= 2")
    else:
        print("  litellm: not installed (pip install litellm), not measured")


if __name__ == "__main__":
    main()
