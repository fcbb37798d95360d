"""Packaging: the dependency lists agree, the lock pins them, the wheel carries its data.

pyproject.toml is the single source of the dependency set; environment.yml (conda users) and
requirements-lock.txt (tested versions, a pip constraints file) must follow it. These tests
read the files as text, so they need neither conda nor network.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata
import importlib.resources
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

FILTER_MEANS = "data/vgg19_caffe_filter_means.pt"
EXTRAS_INSTALLED = ("notebooks", "test")  # what `make` and environment.yml install


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _declared(extras: tuple[str, ...] = EXTRAS_INSTALLED) -> list[str]:
    """Runtime dependencies plus the given extras, as written in pyproject.toml, deduplicated."""
    project = _pyproject()["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return list(dict.fromkeys(reqs))


def _all_pyproject_requirements() -> list[Requirement]:
    project = _pyproject()["project"]
    extras = tuple(project["optional-dependencies"])
    return [Requirement(r) for r in _declared(extras)]


def _environment_yml() -> tuple[list[str], list[str]]:
    """(conda dependencies, pip list) of environment.yml.

    A small line-based reader: the file is ours and uses only block lists, so this avoids a
    YAML dependency. It fails loudly on anything it does not understand.
    """
    conda, pip = [], []
    in_deps = in_pip = False
    pip_indent = -1
    for raw in (ROOT / "environment.yml").read_text().splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        if indent == 0:
            in_deps, in_pip = text == "dependencies:", False
            continue
        if not in_deps:
            continue
        if in_pip and indent > pip_indent:
            assert text.startswith("- "), f"unexpected line in the pip list: {raw!r}"
            pip.append(text[2:].strip())
            continue
        in_pip = False
        assert text.startswith("- "), f"unexpected line in dependencies: {raw!r}"
        if text == "- pip:":
            in_pip, pip_indent = True, indent
        else:
            conda.append(text[2:].strip())
    return conda, pip


def _normalise(req: str) -> str:
    r = Requirement(req)
    return f"{canonicalize_name(r.name)}{r.specifier}{';' + str(r.marker) if r.marker else ''}"


def _lock() -> dict[str, str]:
    """requirements-lock.txt as {canonical name: version}; every line must be an exact pin."""
    pins = {}
    for raw in (ROOT / "requirements-lock.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        assert m, f"requirements-lock.txt: {raw!r} is not a plain 'name==version' pin"
        name = canonicalize_name(m[1])
        assert name not in pins, f"requirements-lock.txt pins {name} twice"
        pins[name] = m[2]
    return pins


def _make_rule(target: str) -> tuple[str, list[str]]:
    """(prerequisites, recipe lines) of a rule in the Makefile."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(rf"^{re.escape(target)}\s*:(?!=)(.*)$", line)
        if m:
            recipe = []
            for nxt in lines[i + 1:]:
                if nxt.startswith("\t"):
                    recipe.append(nxt[1:])
                elif nxt.strip() and not nxt.startswith("#"):
                    break
            return m[1].strip(), recipe
    raise AssertionError(f"Makefile has no rule for {target!r}")


# (a) one dependency set --------------------------------------------------------------------


def test_environment_yml_pip_list_equals_pyproject():
    _, pip = _environment_yml()
    assert pip, "environment.yml has no pip: list"
    assert "-e ." not in pip, "environment.yml is a pure dependency list (see its header)"
    assert sorted(map(_normalise, pip)) == sorted(map(_normalise, _declared())), (
        "environment.yml's pip list must equal pyproject's dependencies + notebooks + test extras"
    )
    assert len(pip) == len(set(map(_normalise, pip))), "environment.yml lists a package twice"


def test_environment_yml_python_satisfies_requires_python():
    conda, _ = _environment_yml()
    assert "pip" in conda
    pythons = [d for d in conda if re.match(r"python\s*[=<>]", d)]
    assert len(pythons) == 1, f"expected one python=X.Y line, got {pythons}"
    version = pythons[0].split("=")[-1].strip()
    assert Version(version) in SpecifierSet(_pyproject()["project"]["requires-python"])


def test_dev_extra_is_part_of_test_extra():
    extras = _pyproject()["project"]["optional-dependencies"]
    assert set(map(_normalise, extras["dev"])) <= set(map(_normalise, extras["test"]))


# (b) the lock pins every declared requirement ----------------------------------------------


def test_lock_pins_every_requirement_within_its_specifier():
    pins = _lock()
    for req in _all_pyproject_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared in pyproject.toml but not pinned (run `make lock`)"
        assert Version(pins[name]) in req.specifier, (
            f"requirements-lock.txt pins {name}=={pins[name]}, outside pyproject's {req}"
        )


def test_lock_excludes_the_project_and_local_builds():
    pins = _lock()
    assert "nst-utils" not in pins, "the lock must not pin the project itself (--exclude-editable)"
    local = {n: v for n, v in pins.items() if Version(v).local}
    # e.g. torch==2.13.0+cpu from a machine-local wheel directory: not installable elsewhere
    assert not local, f"locally built versions in the lock: {local}"


# (c) the console script -------------------------------------------------------------------


def test_console_script_declared_and_resolves_to_a_callable():
    scripts = _pyproject()["project"]["scripts"]
    assert list(scripts) == ["nst"]
    module, _, attr = scripts["nst"].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))


def test_installed_entry_point_matches():
    try:
        dist = importlib.metadata.distribution("nst-utils")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("nst-utils is not installed (make installs it editable)")
    (ep,) = [e for e in dist.entry_points if e.group == "console_scripts" and e.name == "nst"]
    assert ep.value == "nst_utils.cli:main"
    assert callable(ep.load())


# (d) package data -------------------------------------------------------------------------


def test_filter_means_declared_as_package_data_and_present():
    setuptools_cfg = _pyproject()["tool"]["setuptools"]
    patterns = setuptools_cfg["package-data"]["nst_utils"]
    assert any(fnmatch.fnmatch(FILTER_MEANS, p) for p in patterns), patterns
    assert any(fnmatch.fnmatch("nst_utils", p) for p in setuptools_cfg["packages"]["find"]["include"])
    assert (ROOT / "nst_utils" / FILTER_MEANS).is_file()
    assert (importlib.resources.files("nst_utils") / FILTER_MEANS).is_file()


def _sample_files() -> list[str]:
    """Package-relative paths of the sample images stored in nst_utils, and their credits."""
    import nst_utils
    from nst_utils.samples import SAMPLES, sample_path

    package = Path(nst_utils.__file__).parent
    paths = [sample_path(name) for name in SAMPLES]
    stored = [path for path in paths if path.is_relative_to(package)]  # "hopper" is matplotlib's
    return [path.relative_to(package).as_posix() for path in stored] + ["data/samples/CREDITS.md"]


def test_sample_files_declared_as_package_data_and_present():
    patterns = _pyproject()["tool"]["setuptools"]["package-data"]["nst_utils"]
    files = _sample_files()
    assert len(files) > 1
    for file in files:
        assert any(fnmatch.fnmatch(file, p) for p in patterns), (file, patterns)
        assert (importlib.resources.files("nst_utils") / file).is_file(), f"nst_utils/{file} is missing"


@pytest.mark.slow
def test_wheel_contains_package_data_and_entry_point(tmp_path):
    """Build a real wheel (offline, from a copy: the checkout is left untouched)."""
    setuptools = pytest.importorskip("setuptools")
    if Version(setuptools.__version__) < Version("70.1") and importlib.util.find_spec("wheel") is None:
        pytest.skip(f"setuptools {setuptools.__version__} needs the 'wheel' package to build wheels")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            (src / name).write_bytes((ROOT / name).read_bytes())
    _copy_tree(ROOT / "nst_utils", src / "nst_utils")
    out = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(out), str(src)],
        check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = out.glob("nst_utils-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert f"nst_utils/{FILTER_MEANS}" in names
        assert {f"nst_utils/{file}" for file in _sample_files()} <= set(names)
        (ep_file,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "nst = nst_utils.cli:main" in zf.read(ep_file).decode()
    assert not any(n.startswith(("tests/", "benchmarks/", "scripts/", "notebooks/")) for n in names)


def _copy_tree(src: Path, dst: Path) -> None:
    for path in src.rglob("*"):
        if "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())


# (e) the two commands and CI --------------------------------------------------------------


def test_make_test_runs_pytest_after_install():
    prereqs, recipe = _make_rule("test")
    assert "$(VENV)/.installed" in prereqs.split()
    assert any(re.search(r"\$\(BIN\)/python -m pytest\b", line) for line in recipe), recipe


def test_make_notebooks_runs_at_learner_defaults_then_cleans_and_syncs():
    """The one command that makes the committed outputs (checked by tests/test_notebook_outputs.py)."""
    _, recipe = _make_rule("notebooks")
    text = "\n".join(recipe)
    assert "env -u MPLBACKEND" in text and "--execute --inplace" in text, recipe
    steps = [text.index(s) for s in ("jupytext --sync", "nbconvert", "scripts/clean_notebooks.py")]
    assert steps == sorted(steps), "sync .md edits in, execute, then clean"
    assert recipe[-1].strip().startswith("$(BIN)/jupytext --sync"), "the .md follows the executed .ipynb"


def test_make_install_uses_the_lock_as_constraints():
    prereqs, recipe = _make_rule("$(VENV)/.installed")
    assert set(prereqs.split()) == {"pyproject.toml", "requirements-lock.txt"}
    assert any("-c requirements-lock.txt" in line and "-e" in line for line in recipe), recipe


def test_makefile_recipes_are_tab_indented():
    """A recipe indented with spaces is a `missing separator` error in GNU make."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    bad = [n for n, line in enumerate(lines, 1)
           if line.startswith(" ") and line.strip() and not line.lstrip().startswith("#")
           and not (n > 1 and lines[n - 2].rstrip().endswith("\\"))]
    assert bad == [], f"Makefile lines indented with spaces: {bad}"


def test_ci_runs_make_test():
    ci = ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK), ".ci/run must be executable"
    code = [line.split("#", 1)[0] for line in ci.read_text().splitlines()]
    assert any(re.search(r"(^|[\s;&|(])make\s+test\b", line) for line in code)
    assert any("set -euo pipefail" in line for line in code)
