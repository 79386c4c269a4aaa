"""How much ``%load_ext llm_magics`` adds to a Python process that has IPython loaded.

Three kinds of fresh subprocess, interleaved, several runs each (median reported; these
machines are shared and noisy, so only same-run comparisons mean anything):

  bare      python -c "import IPython"
  shell     import IPython + create an InteractiveShell (what a kernel has before any cell)
  load_ext  the same + %load_ext llm_magics

The extension's cost is ``load_ext - shell`` (target: < 150 ms). Inside the load_ext process
the magic itself is also timed (``%load_ext`` alone), and the modules it pulled in are
checked: no httpx2, pandas, numpy, PIL or ipywidgets may load before the first call.

    python bench/load_ext.py [--runs 9]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

SHELL = (
    "import time; t0 = time.perf_counter()\n"
    "import IPython\n"
    "from IPython.core.interactiveshell import InteractiveShell\n"
    "ip = InteractiveShell.instance()\n"
)
PROGRAMS = {
    "bare": "import IPython\n",
    "shell": SHELL,
    "load_ext": SHELL
    + (
        "import sys, json\n"
        "t1 = time.perf_counter()\n"
        "ip.run_line_magic('load_ext', 'llm_magics')\n"
        "t2 = time.perf_counter()\n"
        "heavy = [m for m in ('httpx2', 'pandas', 'numpy', 'PIL', 'ipywidgets', 'diskcache')"
        " if m in sys.modules]\n"
        "print(json.dumps({'magic': t2 - t1, 'heavy': heavy}))\n"
    ),
}
TARGET = 0.150


def run_once(program: str) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    return time.perf_counter() - started, out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()

    for program in PROGRAMS.values():  # warm the OS file cache and .pyc files
        run_once(program)
    walls: dict[str, list[float]] = {name: [] for name in PROGRAMS}
    magic: list[float] = []
    heavy: set[str] = set()
    for _ in range(args.runs):
        for name, program in PROGRAMS.items():
            wall, stdout = run_once(program)
            walls[name].append(wall)
            if name == "load_ext":
                info = json.loads(stdout.strip().splitlines()[-1])
                magic.append(info["magic"])
                heavy.update(info["heavy"])

    med = {name: statistics.median(values) for name, values in walls.items()}
    extra = med["load_ext"] - med["shell"]
    print(f"median of {args.runs} runs each, interleaved (python {sys.version.split()[0]})")
    for name in PROGRAMS:
        spread = f"{min(walls[name]) * 1e3:6.0f}-{max(walls[name]) * 1e3:.0f} ms"
        print(f"  {name:9s} {med[name] * 1e3:7.1f} ms   (range {spread})")
    print(
        f"  IPython + shell over bare import IPython: {(med['shell'] - med['bare']) * 1e3:7.1f} ms"
    )
    print(
        f"  %load_ext llm_magics, extra wall time:    {extra * 1e3:7.1f} ms   (target < {TARGET * 1e3:.0f} ms)"
    )
    print(
        f"  %load_ext llm_magics, the magic itself:   {statistics.median(magic) * 1e3:7.1f} ms (median, in-process)"
    )
    print(f"  extra / bare import IPython:              {extra / med['bare']:7.2f}x")
    print(f"  heavy modules loaded by %load_ext:        {sorted(heavy) or 'none'}")
    verdict = "PASS" if extra < TARGET and not heavy else "FAIL"
    print(f"{verdict}: %load_ext adds {extra * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
