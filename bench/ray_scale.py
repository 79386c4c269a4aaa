"""``df.llm.map(engine="ray")`` and ``lm.ray.map`` against the local engine, in one run, on the
same server.

N rows (unique prompts) against a local OpenAI-compatible server with 50 ms latency
(``_latency_server.py``, a separate process), on a Ray cluster of this machine started by
``ray.init(num_cpus=...)`` in this process. In alternating rounds, with the response cache off
so every round sends every row:

* ``local``: ``df.llm.map`` on the kernel's own engine (the baseline);
* ``engine='ray'``: the same call, its prompts answered by Ray actors;
* ``lm.ray.map``: the rows as a ``ray.data.Dataset``, rendered and answered on the actors.

``concurrency`` is per actor on Ray; each Ray contender gets ``concurrency / actors`` so all
three keep the same number of requests in flight.

Prints each contender's median wall time and rows/s, and the median of per-round ratios
against ``local`` (a round's runs are back to back, so the machine's drift cancels). A Ray
job's time includes starting its actors: that is what a user waits for.

One machine cannot show what Ray is for (more machines than one kernel's network and CPU):
this measures what the Ray path costs over the local one where both have the same resources.

    python bench/ray_scale.py [--rows 5000] [--concurrency 64] [--rounds 3] [--actors 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from overhead import start_server  # noqa: E402


def frame(rows: int) -> Any:
    import pandas as pd

    return pd.DataFrame({"id": range(rows), "n": [f"{i}" for i in range(rows)]})


def contenders(rows: int, concurrency: int, actors: int) -> dict[str, Callable[[], int]]:
    import ray

    import llm_magics as lm

    df = frame(rows)
    per_actor = max(1, concurrency // actors)
    template = "Question number {n}: what is {n} plus one?"

    def local() -> int:
        out = df.llm.map(template, model="bench:m", concurrency=concurrency, cache=False,
                         progress=False)  # fmt: skip
        return int(out["llm"].notna().sum())

    def engine_ray() -> int:
        out = df.llm.map(template, model="bench:m", concurrency=per_actor, cache=False,
                         progress=False, engine="ray", actors=actors)  # fmt: skip
        return int(out["llm"].notna().sum())

    def ray_map() -> int:
        dataset = ray.data.from_pandas(df)  # one block: lm.ray.map splits it for the actors
        out = lm.ray.map(dataset, template, model="bench:m", concurrency=per_actor,
                         cache=False, progress=False, actors=actors, batch_size=250)  # fmt: skip
        return int(out.to_pandas()["llm"].notna().sum())

    return {"local": local, "engine='ray'": engine_ray, "lm.ray.map": ray_map}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--actors", type=int, default=2)
    args = parser.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ["LLM_MAGICS_CACHE_DIR"] = tempfile.mkdtemp(prefix="llm-bench-ray-")
    import ray

    import llm_magics as lm

    server, base_url = start_server(50)
    ray.init(num_cpus=max(2, args.actors), include_dashboard=False, log_to_driver=False)
    try:
        lm.register("bench", base_url, api_key="sk-bench-ray-0123456789")
        runs = contenders(args.rows, args.concurrency, args.actors)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for round_no in range(args.rounds):
            for name, run in runs.items():
                start = time.perf_counter()
                answered = run()
                elapsed = time.perf_counter() - start
                if answered != args.rows:
                    raise SystemExit(f"{name}: {answered} of {args.rows} rows answered")
                times[name].append(elapsed)
                print(f"round {round_no + 1} {name:>14}: {elapsed:6.2f} s "
                      f"({args.rows / elapsed:7.0f} rows/s)", flush=True)  # fmt: skip
    finally:
        ray.shutdown()
        server.kill()

    print(f"\n{args.rows} rows, concurrency {args.concurrency}, {args.actors} actors, "
          f"{os.cpu_count()} CPUs, {args.rounds} rounds")  # fmt: skip
    base = times["local"]
    for name, seconds in times.items():
        median = statistics.median(seconds)
        ratios = [b / s for b, s in zip(base, seconds, strict=True)]
        print(f"{name:>14}: median {median:6.2f} s, {args.rows / median:7.0f} rows/s, "
              f"speed vs local {statistics.median(ratios):.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
