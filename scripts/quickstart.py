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
    import tempfile

    import nbformat
    from jupyter_client import KernelManager
    from nbclient import NotebookClient

    source = ROOT / "notebooks" / "quickstart.ipynb"
    target = ROOT / "artifacts" / "quickstart.executed.ipynb"
    target.parent.mkdir(exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    nb = nbformat.read(source, as_version=4)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as sockets:
        # IPC sockets in a private folder rather than TCP: nothing listens on a port, and the
        # kernel has no reason to warn that its traffic is unencrypted.
        kernel = KernelManager(kernel_name="python3", transport="ipc", ip=f"{sockets}/kernel")
        try:
            NotebookClient(
                nb, km=kernel, timeout=600, resources={"metadata": {"path": str(source.parent)}}
            ).execute()
        finally:
            # nbclient leaves a kernel it was handed running; stop it before we exit, or it
            # notices its parent is gone and says so on stderr.
            if kernel.has_kernel:
                kernel.shutdown_kernel(now=False)
    nbformat.write(nb, target)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        print(f"\n>>> {cell.source.strip()}")
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            # A terminal reads plain text; the Markdown is for notebooks.
            text = data.get("text/plain") or output.get("text") or ""
            if text:
                print(text.rstrip())
    print(
        f"\nran {source.relative_to(ROOT)} in {time.perf_counter() - started:.1f} s; executed copy: {target}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
