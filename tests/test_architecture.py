"""The floors and rooms hold.

``pyproject.toml`` states them as import-linter contracts: ``gis`` at the bottom, ``outage`` and ``dispatch`` on it
and never importing each other, ``api`` on top; inside ``api``, the command line and simulation drivers over the
HTTP edge, over notifications, maps and the console, over the running service, over the store. A second check
refuses any import cycle between two modules, lazy (function-level) imports included: a cycle a contract does not
see is still one a reader has to hold in their head.

Both run in a fresh interpreter with the repo root on its path: inside a pytest session, ``tests/api`` (a folder
without ``__init__``) can pass for a namespace package ``api`` and hide the real one from the import graph.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "data", "outage", "dispatch", "gis")

CONTRACTS = """
import sys
from importlinter.cli import lint_imports
sys.exit(lint_imports(config_filename="pyproject.toml", no_cache=True, no_logo=True))
"""

CYCLES = """
import json, sys
import grimp, networkx as nx
graph = grimp.build_graph(*sys.argv[1:], include_external_packages=False, cache_dir=None)
imports = nx.DiGraph()
for module in graph.modules:
    for imported in graph.find_modules_directly_imported_by(module):
        # a package's __init__ that re-exports its own submodules is not a cycle a reader follows
        if not imported.startswith(module + "."):
            imports.add_edge(module, imported)
cycles = [sorted(c) for c in nx.strongly_connected_components(imports) if len(c) > 1]
print(json.dumps({"modules": sorted(graph.modules), "cycles": cycles}))
"""


def _fresh(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_import_contracts_are_kept():
    run = _fresh(CONTRACTS)
    assert run.returncode == 0, run.stdout + run.stderr


def test_no_import_cycle_between_modules():
    run = _fresh(CYCLES, *PACKAGES)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    # the graph is of this repo's packages, not of a namespace package of the same name
    assert {"api.store.db", "api.service.live", "outage.engine", "gis.topology"} <= set(found["modules"])
    assert not found["cycles"], "import cycles: " + "; ".join(" <-> ".join(c) for c in found["cycles"])
