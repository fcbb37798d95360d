"""The "Your turn" cells of the notebooks: unfilled in the committed run, each followed by its
check and a folded solution; with the solutions filled in, every check passes.

A "Your turn" cell is a code cell tagged ``your-turn`` that defines the learner's functions with
their signatures and docstrings and a body that is only a comment. The next code cell runs the checks of
``nst_utils.checks``; the next markdown cell holds the solution in a ``<details>`` block, which
renders folded in JupyterLab, on code hosts and in the book.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
from pathlib import Path

import nbformat
import pytest
import torch
from helpers import ROOT

import nst_utils as nst

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TAG = "your-turn"
SOLUTION = re.compile(r"<details><summary>Solution</summary>\s*```python\n(.*?)```.*?</details>", re.DOTALL)


def _exercises(path: Path) -> list[tuple[nbformat.NotebookNode, nbformat.NotebookNode, str]]:
    """(your-turn cell, check cell, solution source) for each exercise of a notebook."""
    cells = nbformat.read(path, as_version=4).cells
    found = []
    for i, cell in enumerate(cells):
        if TAG not in cell.metadata.get("tags", []):
            continue
        check = next(c for c in cells[i + 1:] if c.cell_type == "code")
        after = next(c for c in cells[i + 1:] if c.cell_type == "markdown")
        match = SOLUTION.search(after.source)
        assert match, f"{path.name}: no folded solution after the your-turn cell {i}"
        found.append((cell, check, match.group(1)))
    return found


def _run(source: str, namespace: dict) -> str:
    """Run a cell's source as IPython would (the last expression is shown) and return what it showed."""
    tree = ast.parse(source)
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, "<cell>", "exec"), namespace)  # noqa: S102 (a notebook cell, as Jupyter runs it)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)
            if value is not None:
                print(repr(value))
    return shown.getvalue()


def _namespace() -> dict:
    return {"torch": torch, "nst": nst, "color": nst.color}


def test_every_chapter_has_exercises():
    counts = {path.name: len(_exercises(path)) for path in NOTEBOOKS}
    assert len(counts) == 4 and all(counts.values()), counts


def test_every_check_of_the_package_is_used():
    used = " ".join(check.source for path in NOTEBOOKS for _, check, _ in _exercises(path))
    missing = [name for name in nst.checks.EXERCISES if f"check_{name}(" not in used]
    assert not missing, f"checks no notebook calls: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_committed_run_shows_the_cells_unfilled(path):
    for cell, check, _ in _exercises(path):
        assert "    # your code here" in cell.source, cell.source
        shown = "".join(out.get("text", "") or out.get("data", {}).get("text/plain", "")
                        for out in check.outputs)
        lines = shown.strip().splitlines()
        assert lines and all(line.endswith(": not written yet") for line in lines), shown


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_check_passes_with_the_solutions_filled_in(path):
    for cell, check, solution in _exercises(path):
        namespace = _namespace()
        _run(cell.source, namespace)
        unfilled = _run(check.source, namespace)
        assert "not written yet" in unfilled
        _run(solution, namespace)  # the solution replaces the your-turn cell
        lines = _run(check.source, namespace).strip().splitlines()
        assert lines and all(": correct (" in line for line in lines), lines
