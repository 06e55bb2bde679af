"""The floors and rooms hold.

``pyproject.toml`` states them as import-linter contracts: ``gis`` at the bottom, ``outage`` and ``dispatch`` on it
and never importing each other, ``api`` on top; inside ``api``, the command line and simulation drivers over the
HTTP edge, over notifications and maps, over the running service, over the store. A second check refuses any import
cycle between two modules, lazy (function-level) imports included: a cycle a contract does not see is still one a
reader has to hold in their head.
"""

from __future__ import annotations

import os
from pathlib import Path

import grimp
import networkx as nx
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "data", "outage", "dispatch", "gis")


def test_import_contracts_are_kept(capsys):
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    finally:
        os.chdir(cwd)
    assert code == 0, capsys.readouterr().out


def test_no_import_cycle_between_modules():
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False, cache_dir=None)
    imports = nx.DiGraph()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            # a package's __init__ that re-exports its own submodules is not a cycle a reader follows
            if not imported.startswith(module + "."):
                imports.add_edge(module, imported)
    cycles = [c for c in nx.strongly_connected_components(imports) if len(c) > 1]
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in cycles)
