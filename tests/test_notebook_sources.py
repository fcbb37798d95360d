"""Each notebook and its paired MyST Markdown source hold the same cells.

notebooks/NN_name.ipynb (with outputs, what a reader opens) and notebooks/NN_name.md (inputs
only, what a diff shows) are a jupytext pair, configured by notebooks/jupytext.toml. A
maintainer edits either side and runs `make sync` (``jupytext --sync``); this test fails when
that was forgotten, i.e. when the cells read from both sides differ in type, source or tags.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import jupytext
import pytest
from helpers import ROOT
from jupytext.config import find_jupytext_configuration_file, load_jupytext_configuration_file

NOTEBOOKS = ROOT / "notebooks"
PAIRED_FORMATS = "ipynb,md:myst"
SYNC_HINT = "after editing either side, run `make sync`"


def _ipynbs() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def _mds() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.md"))


def cell_summary(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    """What a pair must agree on: per cell its type, its source and its tags."""
    return [(cell.cell_type, cell.source, tuple(cell.metadata.get("tags", ()))) for cell in nb.cells]


def pair_differences(ipynb: Path, md: Path) -> str:
    """'' when the two files hold the same cells, else a readable account of the first difference."""
    left = cell_summary(jupytext.read(ipynb))
    right = cell_summary(jupytext.read(md, fmt="md:myst"))
    for index, (a, b) in enumerate(zip(left, right)):
        if a == b:
            continue
        what = [name for name, x, y in zip(("type", "source", "tags"), a, b) if x != y]
        diff = "\n".join(difflib.unified_diff(a[1].splitlines(), b[1].splitlines(), ipynb.name, md.name,
                                              lineterm="", n=1))
        return (f"cell {index} differs in {', '.join(what)}: {a[0]} {list(a[2])} in {ipynb.name}, "
                f"{b[0]} {list(b[2])} in {md.name}\n{diff}")
    if len(left) != len(right):
        return f"{ipynb.name} has {len(left)} cells, {md.name} has {len(right)}"
    return ""


def test_the_series_is_there():
    names = [p.stem for p in _ipynbs()]
    assert names[:4] == ["01_content_reconstruction", "02_style_reconstruction", "03_style_transfer",
                         "04_controlling_perceptual_factors"], names


def test_pairing_is_configured_for_the_notebooks_folder():
    config_file = find_jupytext_configuration_file(str(NOTEBOOKS))
    assert config_file is not None and Path(config_file) == NOTEBOOKS / "jupytext.toml", config_file
    config = load_jupytext_configuration_file(config_file)
    for ipynb in _ipynbs():
        assert config.default_formats(str(ipynb)) == PAIRED_FORMATS, ipynb.name


@pytest.mark.parametrize("ipynb", _ipynbs(), ids=lambda p: p.name)
def test_notebook_has_its_markdown_source(ipynb):
    md = ipynb.with_suffix(".md")
    assert md.is_file(), f"{md.relative_to(ROOT)} is missing: run `make sync` to create it"
    header = md.read_text(encoding="utf-8").split("\n---\n", 1)[0]
    assert "format_name: myst" in header, f"{md.name} is not a jupytext MyST notebook (no myst header)"


@pytest.mark.parametrize("md", _mds(), ids=lambda p: p.name)
def test_markdown_source_has_its_notebook(md):
    assert md.with_suffix(".ipynb").is_file(), (
        f"{md.relative_to(ROOT)} has no notebook: run `make sync` to create {md.with_suffix('.ipynb').name}")


@pytest.mark.parametrize("ipynb", _ipynbs(), ids=lambda p: p.name)
def test_pair_is_in_sync(ipynb):
    md = ipynb.with_suffix(".md")
    if not md.is_file():
        pytest.skip(f"{md.name} is missing (reported by test_notebook_has_its_markdown_source)")
    difference = pair_differences(ipynb, md)
    assert not difference, f"{ipynb.name} and {md.name} are out of sync ({SYNC_HINT}):\n{difference}"


def test_the_check_notices_an_edit_on_one_side(tmp_path):
    """The comparison itself: a pair made by jupytext agrees; one edited line is reported."""
    ipynb = _ipynbs()[0]
    nb = jupytext.read(ipynb)
    copy_ipynb, copy_md = tmp_path / ipynb.name, tmp_path / ipynb.with_suffix(".md").name
    jupytext.write(nb, copy_ipynb)
    jupytext.write(nb, copy_md, fmt="md:myst")
    assert pair_differences(copy_ipynb, copy_md) == ""
    code = next(i for i, cell in enumerate(nb.cells) if cell.cell_type == "code")
    nb.cells[code].source += "\nprint('edited on one side only')"
    jupytext.write(nb, copy_md, fmt="md:myst")
    assert f"cell {code} differs in source" in pair_differences(copy_ipynb, copy_md)


#: The widest code line the rendered book shows without a scroll bar (its column is about 88
#: characters of code wide), and the limit the notebooks' code keeps.
CODE_LINE_LIMIT = 88


@pytest.mark.parametrize("md", _mds(), ids=lambda p: p.name)
def test_code_lines_fit_the_books_column(md):
    nb = jupytext.read(md, fmt="md:myst")
    long = [f"code cell {n}: {len(line)} characters: {line.strip()[:60]}..."
            for n, cell in enumerate(c for c in nb.cells if c.cell_type == "code")
            for line in cell.source.splitlines() if len(line) > CODE_LINE_LIMIT]
    # code in the text too: the folded solutions of the "Your turn" cells
    long += [f"code block in the text: {len(line)} characters: {line.strip()[:60]}..."
             for cell in nb.cells if cell.cell_type == "markdown"
             for block in re.findall(r"```python\n(.*?)```", cell.source, re.DOTALL)
             for line in block.splitlines() if len(line) > CODE_LINE_LIMIT]
    assert not long, f"{md.name}: lines over {CODE_LINE_LIMIT} characters:\n" + "\n".join(long)
