"""The notebooks' fast mode (tests/notebook_parameters.py) and what nbval then still catches."""

from __future__ import annotations

import os
import subprocess
import sys

import nbformat
import pytest
from helpers import ROOT
from notebook_parameters import (
    FAST_SIZE,
    FAST_STEPS,
    PARAMETERS_TAG,
    fast_parameters,
    parameter_values,
    shrink_notebook,
)


def test_sizes_and_steps_are_capped_and_the_rest_kept() -> None:
    source = 'SIZE = 512  # px\nFIG3_STEPS = 300\nGRID_SIZE = 32\nCONTENT = "tubingen"\nRATIO = 0.001'
    fast = parameter_values(fast_parameters(source))
    assert fast == {"SIZE": FAST_SIZE, "FIG3_STEPS": FAST_STEPS, "GRID_SIZE": 32, "CONTENT": "tubingen",
                    "RATIO": 0.001}


@pytest.mark.parametrize("line", ["SIZE, STEPS = 128, 100", "SIZE = 2 * BASE", "print(SIZE)",
                                  "SIZE: int = 128", "A = B = 1"])
def test_a_line_that_is_not_a_plain_assignment_is_named(line: str) -> None:
    with pytest.raises(ValueError, match="not `NAME = literal`"):
        fast_parameters(f"STEPS = 100\n{line}")


def test_only_the_tagged_cell_is_rewritten() -> None:
    tagged = nbformat.v4.new_code_cell("SIZE = 256", metadata=nbformat.from_dict({"tags": [PARAMETERS_TAG]}))
    plain = nbformat.v4.new_code_cell("SIZE = 256")
    nb = nbformat.v4.new_notebook(cells=[tagged, plain])
    assert shrink_notebook(nb) == 1
    assert [cell.source for cell in nb.cells] == [f"SIZE = {FAST_SIZE}", "SIZE = 256"]


STARTUP_SCALES_GRAM = """
import nst_utils.losses as losses

_gram = losses.gram_matrix


def gram_matrix(features):  # a Gram matrix 1 % too large: the mistake nbval must see
    return 1.01 * _gram(features)


losses.gram_matrix = gram_matrix
"""


@pytest.mark.slow
def test_nbval_fails_notebook_02_when_the_gram_matrix_is_off_by_one_percent(tmp_path) -> None:
    """The cells tagged for nbval print numbers sensitive enough that a Gram matrix 1 % off fails
    them in fast mode: a kernel start-up file scales ``nst_utils.losses.gram_matrix`` by 1.01."""
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "scale_gram.py").write_text(STARTUP_SCALES_GRAM)
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}
    notebook = "notebooks/02_style_reconstruction.ipynb"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", notebook], check=False, cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    report = done.stdout + done.stderr
    assert done.returncode == 1, report[-3000:]
    # not only the notebook's own assert_close: the printed outputs nbval compares differ too
    assert "mismatch 'stdout'" in report, report[-3000:]
