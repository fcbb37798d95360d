"""Normalise executed notebooks before they are committed (step 2 of `make notebooks`).

The committed notebooks carry the outputs of a full run at the learner defaults, figures
included, so that a reader sees them on a code host and the book shows them. What this
script removes is what would break that page or make every re-run a noisy diff:

* ipywidgets state. Without a kernel a widget cannot work, and a code host renders a
  ``application/vnd.jupyter.widget-view+json`` output without its saved state as an error. So
  the notebook-level ``metadata.widgets`` is dropped, and so is every output that shows a
  widget. We remove such outputs rather than keep their ``text/plain``: that text is the
  widget's constructor repr (``TransferPanel(children=(VBox(...``), noise to a reader, and the
  markdown around the cell already says what the panel does. The cell keeps its execution
  count, so it still reads as "this cell was run".
* volatile metadata: the per-cell execution timestamps nbclient records
  (``metadata.execution``), papermill's and editors' bookkeeping.

Execution counts, text, images and every other output stay as they are. Running the script
twice changes nothing (tests/test_notebook_outputs.py checks that the committed notebooks
are already clean).

    python scripts/clean_notebooks.py notebooks/*.ipynb          # rewrite in place
    python scripts/clean_notebooks.py --check notebooks/*.ipynb  # exit 1 if one would change
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: Notebook-level metadata that is state or bookkeeping, not content.
VOLATILE_NOTEBOOK_METADATA = ("widgets", "papermill", "execution")
#: Cell-level metadata of the same kind (``execution``: nbclient's timestamps; ``ExecuteTime``:
#: the classic ExecuteTime extension; ``collapsed``/``scrolled``: how one person's UI left it).
VOLATILE_CELL_METADATA = ("execution", "papermill", "ExecuteTime", "collapsed", "scrolled")


def shows_a_widget(output: dict) -> bool:
    """True for an output whose rich representation is an ipywidgets view."""
    return WIDGET_VIEW in output.get("data", {})


def clean_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without widget state, widget outputs and volatile metadata."""
    nb = copy.deepcopy(nb)
    for key in VOLATILE_NOTEBOOK_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = [out for out in cell.outputs if not shows_a_widget(out)]
    return nb


def clean_file(path: Path, check: bool = False) -> bool:
    """Clean ``path`` in place (or only compare, with ``check``); True if it was/would be changed."""
    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    cleaned = nbformat.writes(clean_notebook(nb))
    if not cleaned.endswith("\n"):
        cleaned += "\n"  # as nbformat.write() and jupytext write it
    if cleaned == text:
        return False
    if not check:
        path.write_text(cleaned, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK.ipynb")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a notebook needs cleaning")
    args = parser.parse_args(argv)
    changed = [path for path in args.notebooks if clean_file(path, check=args.check)]
    for path in changed:
        print(f"{'needs cleaning' if args.check else 'cleaned'}: {path}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
