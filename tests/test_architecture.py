"""The package's shape: a teaching core that loads nothing of the engine room, no import cycles,
settings at the bottom of the graph, and a test switch that only shrinks sizes."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

PACKAGE = ROOT / "nst_utils"
#: What a run reaches the engine room through (the seam), and the faces that ask it for forecasts.
ENGINE_USERS = {"nst_utils.loop", "nst_utils.live", "nst_utils.recipes", "nst_utils.widgets", "nst_utils.cli"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The package modules ``path`` imports anywhere in it (top level or inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join([*base, node.module] if node.module else base)
            candidates = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            found.update(c for c in candidates if _exists(c))
            if node.module is None:
                found.update(target for a in node.names if not _exists(f"{target}.{a.name}"))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found.update(n for n in names if n.startswith("nst_utils") and _exists(n))
    found.discard(name)
    return found


def _runtime_nodes(tree: ast.AST):
    """Every node, except those under ``if TYPE_CHECKING:`` (imports for editors, never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        yield node
        yield from _runtime_nodes(node)


def _exists(module: str) -> bool:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_the_graph_sees_the_imports_it_should() -> None:
    """Guards the parser below: known edges of the package are found."""
    graph = _graph()
    assert "nst_utils.engine" in graph["nst_utils.loop"]
    assert "nst_utils.losses" in graph["nst_utils.objective"]
    assert "nst_utils.live" in graph["nst_utils.recipes"]  # imported inside a function
    assert graph["nst_utils"] == {"nst_utils.version"}  # the lazy package: its editor imports do not run
    assert "nst_utils.engine.hardware" in graph["nst_utils.engine"]
    assert "nst_utils.engine.winograd" in graph["nst_utils.engine.network"]  # imported inside a function


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """The first import cycle in ``edges`` (a path that returns to its start), or None."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for dep in sorted(edges.get(module, ())):
            if state.get(dep) == "open":
                return [*path[path.index(dep):], dep]
            if dep not in state and (found := visit(dep, [*path, dep])):
                return found
        state[module] = "done"
        return None

    for module in sorted(edges):
        if module not in state and (found := visit(module, [module])):
            return found
    return None


def test_the_package_has_no_import_cycle() -> None:
    """Every edge counts, the package's own ``__init__`` included: a module that imports a name
    from the package while the package imports that module is a cycle."""
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_sees_a_cycle_through_the_package() -> None:
    graph = _graph()
    graph["nst_utils"] = graph["nst_utils"] | {"nst_utils.recipes"}  # as when __init__ imported everything
    graph["nst_utils.recipes"] = graph["nst_utils.recipes"] | {"nst_utils"}  # from . import __version__
    assert _cycle(graph) is not None


def test_config_sits_at_the_bottom_of_the_graph() -> None:
    graph = _graph()
    assert graph["nst_utils.config"] <= {"nst_utils.layers"}  # the layer-name table, to validate names
    assert graph["nst_utils.layers"] == set()


def _core_modules() -> list[str]:
    """Every module of the package below the run loop: what reads without the engine room."""
    return sorted(m for m in _graph() if m.startswith("nst_utils.") and m not in ENGINE_USERS
                  and not m.startswith("nst_utils.engine") and m != "nst_utils.__main__")


def test_the_core_is_all_there() -> None:
    core = _core_modules()
    assert {"nst_utils.config", "nst_utils.layers", "nst_utils.images", "nst_utils.features",
            "nst_utils.losses", "nst_utils.optimize", "nst_utils.objective", "nst_utils.device"} <= set(core)


def test_core_modules_load_nothing_of_the_engine_room() -> None:
    """In a fresh interpreter, importing every core module loads no module under
    ``nst_utils.engine`` (the hardware policy included).

    One interpreter for all of them proves it for each: importing a set of modules loads the union
    of what each loads alone (an import adds to ``sys.modules`` and never removes), so when the
    union holds nothing of the engine room, no single module's share does. One PyTorch import
    instead of one per core module."""
    core = _core_modules()
    code = "".join(f"import {m}\n" for m in core) + "import json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert set(core) <= loaded  # every one was imported
    engine = sorted(m for m in loaded if m.startswith("nst_utils.engine"))
    assert engine == [], engine


@pytest.mark.parametrize("module", _core_modules())
def test_core_modules_import_nothing_of_the_engine_room(module: str) -> None:
    """Nor does a core module's source import it, even inside a function the import above never runs."""
    assert not any(dep.startswith("nst_utils.engine") for dep in _graph()[module])


def test_the_package_knows_nothing_of_the_tests_fast_mode() -> None:
    """The notebooks' tests shrink them by rewriting their parameters cells
    (tests/notebook_parameters.py); no package code switches on the environment for it."""
    readers = [path.name for path in PACKAGE.rglob("*.py") if "NST_FAST" in path.read_text()]
    assert readers == []
