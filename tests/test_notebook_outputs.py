"""The committed notebooks hold the outputs of a full run, fit to be read on a code host.

`make notebooks` executes each notebook at the learner defaults (not fast mode), cleans it with
scripts/clean_notebooks.py and syncs its .md. This checks the result, per notebook:

* every code cell ran (has an execution count);
* no ipywidgets state, and no output showing a widget (a code host renders those as an error);
* the file is exactly what clean_notebooks.py leaves (no execution timestamps, ...);
* its settings are one plain cell tagged ``parameters``, which the tests shrink in memory (so
  the committed outputs are those of the cell as written), and no cell shows test machinery;
* it stays small (< 5 MB), and it shows at least one figure (an ``image/png`` output).

The figure check is a real assertion, deliberately not an xfail: notebooks stripped of their
figures (as they were committed before `make notebooks` kept them) fail here.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from helpers import ROOT, load_script
from notebook_parameters import (
    CHECK_TAG,
    FAST_SIZE,
    FAST_STEPS,
    PARAMETERS_TAG,
    fast_value,
    is_parameters_cell,
    parameter_values,
)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_BYTES = 5 * 1024 * 1024
CLEAN_HINT = "run `make notebooks`, or `python scripts/clean_notebooks.py notebooks/*.ipynb`"

clean_notebooks = load_script("clean_notebooks")
by_name = pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _code_cells(nb) -> list[tuple[int, nbformat.NotebookNode]]:
    """(index among code cells, as nbval counts them: `::Cell N`), cell."""
    return list(enumerate(cell for cell in nb.cells if cell.cell_type == "code"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3, NOTEBOOKS


@by_name
def test_every_code_cell_was_run(path):
    unrun = [n for n, cell in _code_cells(_read(path)) if cell.execution_count is None]
    assert not unrun, f"{path.name}: code cells {unrun} have no execution count (run `make notebooks`)"


@by_name
def test_no_widget_state_or_widget_outputs(path):
    nb = _read(path)
    assert "widgets" not in nb.metadata, f"{path.name} stores ipywidgets state ({CLEAN_HINT})"
    shown = [n for n, cell in _code_cells(nb) if any(map(clean_notebooks.shows_a_widget, cell.outputs))]
    assert not shown, f"{path.name}: code cells {shown} have widget-view outputs ({CLEAN_HINT})"


@by_name
def test_notebook_is_as_the_cleaner_leaves_it(path):
    assert not clean_notebooks.clean_file(path, check=True), (
        f"{path.name} has volatile metadata or widget outputs ({CLEAN_HINT})")


@by_name
def test_notebook_is_small(path):
    size = path.stat().st_size
    assert size < MAX_BYTES, (
        f"{path.name} is {size / 2**20:.1f} MB, over {MAX_BYTES // 2**20} MB: make its figures smaller")


def parameters_problems(nb) -> list[str]:
    """Why ``nb``'s settings are not one plain parameters cell that the tests can shrink ([] if fine).

    The tests' fast mode exists only in memory (tests/notebook_parameters.py rewrites the tagged
    cell before nbval runs it), so committed outputs come from the cell as written; what must
    hold is that there is exactly one such cell, of ``NAME = literal`` lines, with at least one
    size or step count above the fast caps (or the tests would run the notebook as a learner
    does), and that no code cell shows test machinery.
    """
    problems: list[str] = []
    cells = [(n, cell) for n, cell in _code_cells(nb) if is_parameters_cell(cell)]
    if len(cells) != 1:
        problems.append(f"{len(cells)} code cells tagged {PARAMETERS_TAG!r}; expected exactly one")
    for n, cell in cells:
        try:
            values = parameter_values(cell.source)
        except (ValueError, SyntaxError) as error:
            problems.append(f"code cell {n}: {error}")
            continue
        if all(fast_value(name, value) == value for name, value in values.items()):
            problems.append(f"code cell {n}: no size or step count above the fast caps ({FAST_SIZE} px, "
                            f"{FAST_STEPS} steps), so the tests would not shrink the notebook")
    for n, cell in _code_cells(nb):
        shown = [word for word in ("NBVAL", "run_settings", "NST_FAST") if word in cell.source]
        if shown:
            problems.append(f"code cell {n} shows test machinery to the learner: {', '.join(shown)}")
    if not any(CHECK_TAG in cell.metadata.get("tags", ()) for _, cell in _code_cells(nb)):
        problems.append(f"no code cell tagged {CHECK_TAG!r}: nbval would compare nothing")
    return problems


@by_name
def test_settings_are_one_plain_parameters_cell(path):
    problems = parameters_problems(_read(path))
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_parameters_check_fails_what_it_must():
    """The check itself, on made-up notebooks."""
    def notebook(*cells):
        return nbformat.v4.new_notebook(cells=[
            nbformat.v4.new_code_cell(source, execution_count=i + 1,
                                      metadata=nbformat.from_dict({"tags": list(tags)}))
            for i, (source, tags) in enumerate(cells)])

    params = ("SIZE = 128\nSTEPS = 100", [PARAMETERS_TAG])
    checked = ("print(1)", [CHECK_TAG])
    assert parameters_problems(notebook(params, checked)) == []
    assert parameters_problems(notebook(checked))  # no parameters cell
    assert parameters_problems(notebook(params, params, checked))  # two
    small = ("SIZE = 64\nSTEPS = 8", [PARAMETERS_TAG])
    assert parameters_problems(notebook(small, checked))  # nothing to shrink
    assert parameters_problems(notebook(("SIZE = BASE * 2", [PARAMETERS_TAG]), checked))  # not a literal
    assert parameters_problems(notebook(params, ("# NBVAL_CHECK_OUTPUT\nprint(1)", [])))
    assert parameters_problems(notebook(params, ("print(1)", [])))  # nothing checked


@by_name
def test_notebook_shows_figures(path):
    """A real assertion, not an xfail: without figures the committed notebooks fail their purpose."""
    outputs = [out for _, cell in _code_cells(_read(path)) for out in cell.outputs]
    pngs = sum("image/png" in out.get("data", {}) for out in outputs)
    assert pngs > 0, (f"{path.name} has no image/png output: the committed notebooks must carry the figures "
                      "of a full run (`make notebooks`, at the learner defaults)")


# the cleaner itself, on a small made-up notebook -------------------------------------------


def test_cleaner_drops_widgets_and_timestamps_and_keeps_the_rest(tmp_path):
    widget = {"output_type": "display_data", "metadata": {},
              "data": {"text/plain": "IntSlider(value=3)",
                       clean_notebooks.WIDGET_VIEW: {"model_id": "abc", "version_major": 2,
                                                     "version_minor": 0}}}
    png = {"output_type": "display_data", "metadata": {},
           "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}}
    text = {"output_type": "stream", "name": "stdout", "text": "loss 1.23\n"}
    cell = nbformat.v4.new_code_cell(
        "panel", execution_count=7, outputs=[nbformat.from_dict(o) for o in (text, widget, png)],
        metadata=nbformat.from_dict({"tags": ["nbval-ignore-output"],
                                     "execution": {"iopub.execute_input": "2026-01-01T00:00:00Z"}}))
    metadata = nbformat.from_dict(
        {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}},
         "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), cell], metadata=metadata)
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert clean_notebooks.clean_file(path, check=True)
    assert clean_notebooks.clean_file(path)
    assert not clean_notebooks.clean_file(path), "cleaning twice must change nothing"
    out = _read(path)
    assert "widgets" not in out.metadata and "kernelspec" in out.metadata
    cleaned = out.cells[1]
    assert cleaned.execution_count == 7
    assert cleaned.metadata == {"tags": ["nbval-ignore-output"]}
    assert [o.get("name") or next(iter(o.data)) for o in cleaned.outputs] == ["stdout", "image/png"]
