"""Run notebooks/quickstart.ipynb in a real kernel on the embedded local model (no key, no
network) and print what each cell answered. The executed copy is written next to the
artifacts so it can be opened in Jupyter."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    import nbformat
    from nbclient import NotebookClient

    source = ROOT / "notebooks" / "quickstart.ipynb"
    target = ROOT / "artifacts" / "quickstart.executed.ipynb"
    target.parent.mkdir(exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    nb = nbformat.read(source, as_version=4)
    started = time.perf_counter()
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(source.parent)}}
    ).execute()
    nbformat.write(nb, target)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        print(f"\n>>> {cell.source.strip()}")
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            text = data.get("text/markdown") or output.get("text") or data.get("text/plain") or ""
            if text:
                print(text.rstrip())
    print(
        f"\nran {source.relative_to(ROOT)} in {time.perf_counter() - started:.1f} s; executed copy: {target}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
