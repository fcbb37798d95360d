"""Running the notebooks small under test: a rewrite of each notebook's parameters cell.

A notebook's settings are one code cell tagged ``parameters`` (as papermill marks it) holding
plain assignments of literals, one per line: ``SIZE = 128``, ``CONTENT = "tubingen"``. A learner
reads and edits that cell; `make notebooks` runs it as written. Under pytest, the repository's
``conftest.py`` hands the cell to :func:`fast_parameters` before nbval runs it (and the browser
test rewrites its copy of the notebook the same way), which caps every name ending in ``SIZE``
at :data:`FAST_SIZE` px and every name ending in ``STEPS`` at :data:`FAST_STEPS`; everything
else, and so every line of code after the cell, is the same in both modes.

Cells whose printed output nbval compares carry the tag ``nbval-check-output``, so the checked
cells print only what holds at both sizes (numbers measured on fixed small copies).
"""

from __future__ import annotations

import ast

import nbformat

FAST_SIZE, FAST_STEPS = 64, 8
PARAMETERS_TAG = "parameters"
CHECK_TAG = "nbval-check-output"


def parameter_values(source: str) -> dict[str, object]:
    """``{name: value}`` of a parameters cell; ValueError naming the line that is not ``NAME = literal``."""
    values: dict[str, object] = {}
    for statement in ast.parse(source).body:
        ok = (isinstance(statement, ast.Assign) and len(statement.targets) == 1
              and isinstance(statement.targets[0], ast.Name) and isinstance(statement.value, ast.Constant))
        if not ok:
            raise ValueError(f"line {statement.lineno} of the parameters cell is not `NAME = literal`: "
                             f"{ast.get_source_segment(source, statement)!r}")
        values[statement.targets[0].id] = statement.value.value
    return values


def fast_value(name: str, value: object) -> object:
    """``value`` capped for the tests' fast mode if ``name`` is a size or a step count."""
    if isinstance(value, int) and not isinstance(value, bool):
        if name.endswith("SIZE"):
            return min(value, FAST_SIZE)
        if name.endswith("STEPS"):
            return min(value, FAST_STEPS)
    return value


def fast_parameters(source: str) -> str:
    """The parameters cell ``source`` with its sizes and step counts capped (comments dropped)."""
    values = parameter_values(source)
    return "\n".join(f"{name} = {fast_value(name, value)!r}" for name, value in values.items())


def is_parameters_cell(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and PARAMETERS_TAG in cell.metadata.get("tags", ())


def shrink_notebook(nb: nbformat.NotebookNode) -> int:
    """Rewrite ``nb``'s parameters cells in place for fast mode; how many there were."""
    cells = [cell for cell in nb.cells if is_parameters_cell(cell)]
    for cell in cells:
        cell.source = fast_parameters(cell.source)
    return len(cells)
