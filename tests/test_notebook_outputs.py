"""The committed notebooks hold the outputs of a full run, fit to be read on a code host.

`make notebooks` executes each notebook at the learner defaults (not fast mode), cleans it with
scripts/clean_notebooks.py and syncs its .md. This checks the result, per notebook:

* every code cell ran (has an execution count);
* no ipywidgets state, and no output showing a widget (a code host renders those as an error);
* the file is exactly what clean_notebooks.py leaves (no execution timestamps, ...);
* it comes from a run at the learner defaults, not from the tests' fast mode (NST_FAST=1): each
  parameters cell prints the ``nst.run_settings`` values it asked for;
* it stays small (< 5 MB), and it shows at least one figure (an ``image/png`` output).

The last two are real assertions, deliberately not xfails: notebooks executed in fast mode or
stripped of their figures (as they were committed before `make notebooks` kept them) fail here.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from helpers import ROOT, load_script

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


#: A call of the fast-mode switch with literal arguments, e.g. ``nst.run_settings(size=128, steps=100)``.
RUN_SETTINGS_CALL = re.compile(
    r"run_settings\(\s*(?:size\s*=\s*)?(\d+)\s*,\s*(?:steps\s*=\s*)?(\d+)\s*,?\s*\)")


def _stdout(cell) -> str:
    return "".join(out.get("text", "") for out in cell.outputs
                   if out.get("output_type") == "stream" and out.get("name") == "stdout")


def full_run_problems(nb) -> list[str]:
    """Why ``nb``'s outputs do not show a run at the learner defaults ([] when they do).

    Every code cell that calls ``nst.run_settings(size=S, steps=N)`` must print the values it
    got, ``NAME=value`` (``SIZE=128, STEPS=100``): its committed stdout must show ``=S`` and
    ``=N`` for each call. Fast mode (NST_FAST=1) would print the caps instead, which is
    distinguishable only if some call asks for more than them; so a notebook must have at
    least one such cell, and at least one call above the caps.
    """
    from nst_utils.config import FAST_SIZE, FAST_STEPS

    problems: list[str] = []
    calls: list[tuple[int, int]] = []
    for n, cell in _code_cells(nb):
        mentioned = cell.source.count("run_settings(")
        if not mentioned:
            continue
        found = [(int(s), int(t)) for s, t in RUN_SETTINGS_CALL.findall(cell.source)]
        if len(found) != mentioned:
            problems.append(f"code cell {n} calls run_settings {mentioned} time(s), {len(found)} with "
                            "literal arguments (write nst.run_settings(size=<int>, steps=<int>))")
        stdout = _stdout(cell)
        for size, steps in found:
            missing = [f"={v}" for v in (size, steps) if not re.search(rf"={v}(?!\d)", stdout)]
            if missing:
                problems.append(f"code cell {n} asks run_settings(size={size}, steps={steps}) but its output "
                                f"{stdout.strip()!r} lacks {' and '.join(missing)}: executed in fast mode "
                                "(NST_FAST=1) or not printing NAME=value; run `make notebooks`")
        calls += found
    if not calls:
        problems.append("no code cell calls nst.run_settings(size=..., steps=...) (the parameters cell)")
    elif not any(size > FAST_SIZE or steps > FAST_STEPS for size, steps in calls):
        problems.append(f"every run_settings call is within the fast-mode caps ({FAST_SIZE} px, {FAST_STEPS} "
                        "steps): a fast-mode run could not be told from a full one")
    return problems


@by_name
def test_outputs_come_from_a_full_run(path):
    """The parameters cell prints what ``nst.run_settings`` returned: the learner defaults, not
    the tests' fast-mode caps."""
    problems = full_run_problems(_read(path))
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_full_run_check_tells_fast_mode_from_a_full_run():
    """The check itself, on made-up notebooks: it passes a full run and fails what it must."""
    def notebook(*cells):
        return nbformat.v4.new_notebook(cells=[
            nbformat.v4.new_code_cell(source, execution_count=i + 1, outputs=[nbformat.from_dict(
                {"output_type": "stream", "name": "stdout", "text": text})])
            for i, (source, text) in enumerate(cells)])

    params = "SIZE, STEPS = nst.run_settings(size=128, steps=100)\nprint(f'SIZE={SIZE}, STEPS={STEPS}')"
    two = ("A, B = nst.run_settings(size=128, steps=100)\nC, D = nst.run_settings(size=256, steps=200)\n"
           "print(...)")
    assert full_run_problems(notebook((params, "SIZE=128, STEPS=100\n"))) == []
    assert full_run_problems(notebook((two, "A=128, B=100, C=256, D=200\n"))) == []
    assert full_run_problems(notebook((params, "SIZE=64, STEPS=8\n")))  # fast mode
    assert full_run_problems(notebook((two, "A=128, B=100, C=64, D=8\n")))  # one call in fast mode
    assert full_run_problems(notebook((params, "SIZE=1280, STEPS=1000\n")))  # =128 is not =1280
    assert full_run_problems(notebook((params, "128 100\n")))  # values not printed as NAME=value
    assert full_run_problems(notebook(("x = 1", "")))  # no parameters cell: vacuous
    small = "SIZE, STEPS = nst.run_settings(size=64, steps=8)\nprint(f'SIZE={SIZE}, STEPS={STEPS}')"
    assert full_run_problems(notebook((small, "SIZE=64, STEPS=8\n")))  # fast mode indistinguishable
    assert full_run_problems(notebook(("S, N = nst.run_settings(size=BASE, steps=100)", "S=128, N=100\n")))


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
