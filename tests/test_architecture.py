"""The package's shape: a teaching core that loads no engine-room machinery, no import cycles,
settings at the bottom of the graph, and a test switch that only shrinks sizes."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nst_utils"
TEACHING = ("config", "layers", "images", "features", "losses", "optimize")
MACHINERY = ("nst_utils.engine.winograd", "nst_utils.engine.malloc", "nst_utils.engine.memory")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The package modules ``path`` imports anywhere in it (top level or inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
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


def _exists(module: str) -> bool:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_the_graph_sees_the_imports_it_should() -> None:
    """Guards the parser below: known edges of the package are found."""
    graph = _graph()
    assert "nst_utils.engine" in graph["nst_utils.recipes"]
    assert "nst_utils.losses" in graph["nst_utils.recipes"]
    assert "nst_utils.engine.hardware" in graph["nst_utils.engine"]
    assert "nst_utils.engine.winograd" in graph["nst_utils.engine"]  # imported inside a function


def test_the_package_has_no_import_cycle() -> None:
    graph = _graph()
    # Importing a submodule runs its package's __init__ first: that is not a dependency edge.
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(edges.get(module, ())):
            if state.get(dep) == "open":
                raise AssertionError("import cycle: " + " -> ".join([*path[path.index(dep):], dep]))
            if dep not in state:
                visit(dep, [*path, dep])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])


def test_config_sits_at_the_bottom_of_the_graph() -> None:
    graph = _graph()
    assert graph["nst_utils.config"] <= {"nst_utils.layers"}  # the layer-name table, to validate names
    assert graph["nst_utils.layers"] == set()


def test_teaching_modules_load_no_engine_room_machinery() -> None:
    code = (
        "import json, sys\n"
        + "".join(f"import nst_utils.{m}\n" for m in TEACHING)
        + "print(json.dumps(sorted(m for m in sys.modules if m.startswith('nst_utils'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert {f"nst_utils.{m}" for m in TEACHING} <= loaded
    assert not loaded & set(MACHINERY), sorted(loaded & set(MACHINERY))


@pytest.mark.parametrize("module", ["losses", "layers", "optimize"])
def test_core_modules_do_not_import_the_engine_room(module: str) -> None:
    assert not any(dep.startswith("nst_utils.engine") for dep in _graph()[f"nst_utils.{module}"])


def test_only_the_sizing_function_reads_the_fast_mode_variable() -> None:
    readers = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and any(
                isinstance(n, ast.Constant) and n.value == "NST_FAST" for n in ast.walk(node)
            ):
                readers.append(f"{_module_name(path)}.{node.name}")
        module_level = [n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.ClassDef)]
        assert not any(isinstance(n, ast.Constant) and n.value == "NST_FAST"
                       for stmt in module_level for n in ast.walk(stmt)), path
    assert readers == ["nst_utils.config.run_settings"]
