"""Repo-wide pytest setup, imported before any test or notebook kernel starts.

nbval starts one Jupyter kernel per notebook after this module is imported, and the
kernel inherits ``os.environ``: so the settings here reach the notebooks too.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent

# Notebooks under test run in fast mode (small images, few steps; nst.run_settings reads it and
# nothing else does). Their committed outputs come from a full run (`make notebooks`), so the cells
# nbval compares print only what holds at both scales. setdefault: NST_FAST=0 can still be forced.
os.environ.setdefault("NST_FAST", "1")

# MPLBACKEND=Agg (common in CI) would stop the kernel showing inline figures, so the cells'
# output lists would differ from the references.
os.environ.pop("MPLBACKEND", None)

# `make` installs the package editable; this also lets kernels import nst_utils from a plain
# checkout (and makes sure it is *this* checkout's copy).
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
