"""The import graph of mlmol has no cycles, between modules or between packages.

Every ``import`` and ``from ... import`` in the source counts, also those inside functions (a lazy
import is still an arrow): the layers stay one-way, e.g. geometry under systems and flows, data
under estimators, a flow family under the registry that builds it.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """mlmol module → the mlmol modules it imports (a name imported from a package counts as its
    submodule where one exists, else as the package)."""
    paths = {_module_name(p): p for p in (SOURCE / "mlmol").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
                targets |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else base
                            for alias in node.names}
        graph[module] = {t for t in targets if t in paths and t != module}
    return graph


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same arrows between top-level parts of mlmol (``mlmol.flows``, ``mlmol.data``, ...)."""
    def part(module: str) -> str:
        return ".".join(module.split(".")[:2])

    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        packages.setdefault(part(module), set()).update(part(t) for t in targets if part(t) != part(module))
    return packages


@pytest.mark.parametrize("level", ["modules", "packages"])
def test_the_import_graph_has_no_cycle(level):
    graph = import_graph()
    assert len(graph) > 50 and "mlmol.geometry" in graph["mlmol.systems.particles"]
    try:
        tuple(TopologicalSorter(graph if level == "modules" else package_graph(graph)).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {' → '.join(error.args[1])}")


def test_a_cycle_is_caught():
    graph = import_graph()
    graph["mlmol.geometry"].add("mlmol.flows.flow")  # geometry importing a flow: a back-arrow
    with pytest.raises(CycleError):
        tuple(TopologicalSorter(package_graph(graph)).static_order())


def test_molecules_are_reachable_from_systems_and_loaded_only_when_asked_for():
    import subprocess
    import sys

    code = ("import sys, mlmol, mlmol.systems as s; "
            "assert 'openmm' not in sys.modules and 'mlmol.systems.molecules' not in sys.modules; "
            "assert s.from_pdb.__module__ == 'mlmol.systems.molecules' and callable(s.alanine_dipeptide); "
            "assert 'mlmol.systems.molecules' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
