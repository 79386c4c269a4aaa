"""The architecture's rules hold: the import-linter contracts of pyproject.toml (layers,
providers independent, IPython only under notebook/, pandas only under dataframe/), the core
importing nothing else of the package, and no import cycle anywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_linter_contracts_are_kept() -> None:
    # In a child process, as `lint-imports` runs in CI (it imports the package afresh).
    script = (
        "import sys; from importlinter.cli import lint_imports; "
        f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, "
        "no_cache=True, no_logo=True))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("llm_magics")


def test_the_core_imports_nothing_else_of_the_package() -> None:
    graph = _graph()
    for module in graph.find_descendants("llm_magics._core"):
        outside = {
            imported
            for imported in graph.find_modules_directly_imported_by(module)
            if imported.startswith("llm_magics") and not imported.startswith("llm_magics._core")
        }
        assert not outside, f"{module} imports {sorted(outside)}"


def test_no_module_of_the_package_is_part_of_an_import_cycle() -> None:
    graph = _graph()
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain is not None:
                cycles.append(" -> ".join([module, *chain]))
    assert not cycles, "\n".join(cycles)
