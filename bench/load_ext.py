"""How much ``%load_ext llm_magics`` costs, next to a bare ``import IPython``, in the same run.

Each run is a fresh subprocess (cold imports, as in a new kernel) that times, in-process with
``perf_counter`` (wall) and ``process_time`` (CPU):

  1. ``import IPython``
  2. creating the InteractiveShell (what a kernel has before the first cell)
  3. ``%load_ext llm_magics``

and lists the heavy modules (httpx2, pandas, numpy, PIL, ipywidgets, diskcache) present after
step 3: none may be, they load on the first call. Timing inside the process keeps interpreter
start-up and scheduling of the subprocess itself out of the numbers; these machines are
shared and noisy, so medians of several runs and same-run ratios are what count.

    python bench/load_ext.py [--runs 11]

Target: ``%load_ext`` < 150 ms of wall time (median).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROGRAM = """
import json, sys, time
w0, c0 = time.perf_counter(), time.process_time()
import IPython
w1, c1 = time.perf_counter(), time.process_time()
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
w2, c2 = time.perf_counter(), time.process_time()
ip.run_line_magic("load_ext", "llm_magics")
w3, c3 = time.perf_counter(), time.process_time()
heavy = [m for m in ("httpx2", "pandas", "numpy", "PIL", "ipywidgets", "diskcache")
         if m in sys.modules]
print(json.dumps({
    "import IPython": [w1 - w0, c1 - c0],
    "InteractiveShell()": [w2 - w1, c2 - c1],
    "%load_ext llm_magics": [w3 - w2, c3 - c2],
    "heavy": heavy,
}))
"""
TARGET = 0.150
STEPS = ("import IPython", "InteractiveShell()", "%load_ext llm_magics")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()

    subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, check=True)  # warm-up
    results = []
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))

    def med(step: str, i: int) -> float:
        return statistics.median(r[step][i] for r in results)

    print(f"median of {args.runs} fresh processes (python {sys.version.split()[0]})")
    print(f"  {'step':24s} {'wall ms':>9s} {'cpu ms':>9s}")
    for step in STEPS:
        print(f"  {step:24s} {med(step, 0) * 1e3:9.1f} {med(step, 1) * 1e3:9.1f}")
    ext, ipy = med(STEPS[2], 0), med(STEPS[0], 0)
    ext_cpu, ipy_cpu = med(STEPS[2], 1), med(STEPS[0], 1)
    heavy = sorted({m for r in results for m in r["heavy"]})
    print(f"  %load_ext / import IPython: {ext / ipy:.3f} (wall), {ext_cpu / ipy_cpu:.3f} (cpu)")
    print(f"  heavy modules after %load_ext: {heavy or 'none'}")
    verdict = "PASS" if ext < TARGET and not heavy else "FAIL"
    print(
        f"{verdict}: %load_ext llm_magics takes {ext * 1e3:.0f} ms (target < {TARGET * 1e3:.0f} ms)"
    )


if __name__ == "__main__":
    main()
