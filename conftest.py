"""Repo-wide pytest setup, imported before any test or notebook kernel starts.

nbval starts one Jupyter kernel per notebook after this module is imported, and the
kernel inherits ``os.environ``: so the settings here reach the notebooks too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent

# The notebooks' fast mode lives with the tests (tests/notebook_parameters.py); this file is
# imported before tests/ is on the path, and `pytest notebooks/` alone must shrink them too.
sys.path.insert(0, str(ROOT / "tests"))
from notebook_parameters import fast_parameters, is_parameters_cell

# MPLBACKEND=Agg (common in CI) would stop the kernel showing inline figures, so the cells'
# output lists would differ from the references.
os.environ.pop("MPLBACKEND", None)

# `make` installs the package editable; this also lets kernels import nst_utils from a plain
# checkout (and makes sure it is *this* checkout's copy).
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Notebooks under test run small: nbval executes each cell's ``source``, so the parameters
    cell of every collected notebook is rewritten here (sizes and step counts capped), like
    papermill's injected parameters. The committed outputs come from a run at the learner
    values (`make notebooks`); the cells nbval compares print only what holds at both."""
    for item in items:
        cell = getattr(item, "cell", None)  # nbval's items carry their notebook cell
        if cell is not None and is_parameters_cell(cell):
            cell.source = fast_parameters(cell.source)
