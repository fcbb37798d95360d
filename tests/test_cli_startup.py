"""The command line answers at once: help, usage errors and unusable input files are reported
before PyTorch is imported (it takes seconds to load); the package's names load on first use.

Each case runs ``python -m nst_utils`` in a fresh interpreter and reports which heavy modules
were imported. Not a timing test: ``benchmarks/startup.py`` measures the time.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, text_file, truncated_jpeg
from PIL import Image

import nst_utils

HEAVY = ("torch", "torchvision")

# `python -c _SCRIPT ARGV_JSON HEAVY...` runs the command line as `python -m nst_utils ARGV` does,
# then prints one JSON line: the exit status and which of the HEAVY modules were imported.
_SCRIPT = """
import json, runpy, sys
heavy = sys.argv[2:]
sys.argv = ["nst", *json.loads(sys.argv[1])]
try:
    runpy.run_module("nst_utils", run_name="__main__", alter_sys=True)
    code = 0
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "heavy": [m for m in heavy if m in sys.modules]}))
"""


def _python(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def _nst(argv: list[str], cwd: Path) -> tuple[int, list[str], str, str]:
    """(exit status, heavy modules imported, stdout before the report, stderr) of ``nst ARGV``."""
    proc = _python(_SCRIPT, json.dumps(argv), *HEAVY, cwd=cwd)
    *output, report = proc.stdout.splitlines()
    result = json.loads(report)
    return result["code"], result["heavy"], "\n".join(output), proc.stderr


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["--help"], "usage: nst"),
        (["transfer", "--help"], "--style-layers"),
        (["content", "--help"], "--layer"),
        (["samples"], "starry_night"),
    ],
)
def test_help_and_samples_load_no_torch(tmp_path: Path, argv: list[str], shown: str) -> None:
    code, heavy, stdout, stderr = _nst(argv, tmp_path)
    assert (code, heavy, stderr) == (0, [], "")
    assert shown in stdout


def _image(folder: Path) -> Path:
    path = folder / "photo.png"
    Image.new("RGB", (64, 48), (10, 120, 240)).save(path)
    return path


T = ["transfer", "hopper", "mosaic"]
#: case: (the arguments, given a scratch folder; what the error line says)
ERRORS = {
    "unknown layer": (lambda d: [*T, "--style-layers", "relu1_1,conv_4"], "unknown layer 'conv_4'; expected"),
    "bad number": (lambda d: [*T, "--ratio", "abc"], "expected a number, got 'abc'"),
    "size out of range": (lambda d: [*T, "--size", "16"], "size 16 is out of range; expected 32..4096"),
    "unknown choice": (lambda d: [*T, "--optimizer", "sgd"], "invalid choice: 'sgd'"),
    "unknown option": (lambda d: [*T, "--colour"], "unrecognized arguments: --colour"),
    "mask count": (lambda d: [*T, "--mask", "a.png", "--mask", "b.png"], "2 --mask given for 1 styles"),
    "missing content": (lambda d: ["transfer", "nope.jpg", "mosaic"], "nope.jpg: no such file"),
    "missing style": (lambda d: [*T, "nope.jpg"], "nope.jpg: no such file"),
    "missing init": (lambda d: [*T, "--init", "nope.jpg"], "nope.jpg: no such file"),
    "missing mask": (lambda d: [*T, "scream", "--mask", str(_image(d)), "--mask", "nope.png"],
                     "nope.png: no such file"),
    "missing image": (lambda d: ["style", "nope.jpg"], "nope.jpg: no such file"),
    "unknown sample": (lambda d: ["content", "sample:nope"], "unknown sample 'nope'; expected one of"),
    "not an image": (lambda d: ["transfer", str(text_file(d)), "mosaic"], "notes.png: not an image"),
    "truncated": (lambda d: [*T, str(truncated_jpeg(d))], "cut.jpg: corrupt or truncated"),
    "directory": (lambda d: [*T, "--mask", str(d)], "is a directory, not an image"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_usage_and_input_errors_load_no_torch(tmp_path: Path, case: str) -> None:
    make, message = ERRORS[case]
    code, heavy, stdout, stderr = _nst([*make(tmp_path), "-o", "out.png"], tmp_path)
    assert code == 2 and heavy == []
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nst: error: "), stderr
    assert message in lines[0]
    assert stdout == ""
    assert not (tmp_path / "out.png").exists()


def test_the_settings_and_the_command_line_import_without_torch(tmp_path: Path) -> None:
    modules = ("config", "layers", "samples", "image_files", "cli")
    code = "".join(f"import nst_utils.{m}\n" for m in modules) + (
        "import sys, nst_utils as nst\n"
        "print(nst.__version__, nst.PAPER.size, [m for m in sys.argv[1:] if m in sys.modules])"
    )
    proc = _python(code, *HEAVY, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [nst_utils.__version__, "512", "[]"]


# --- the lazy package ----------------------------------------------------------------------------

#: The public names, as when the package imported every one eagerly.
PUBLIC = {
    "DEFAULT", "FIG1_CONTENT_LAYERS", "FIG1_STYLE_LAYER_SETS", "LAYERS", "LAYER_CHANNELS", "LAYER_INDEX",
    "PAPER",
    "PAPER_CONTENT_LAYERS", "PAPER_STYLE_LAYERS", "RATIO_RANGE", "ImageError", "MatchingObjective",
    "OptimizeResult", "RunResult", "StepInfo", "TransferConfig", "VGG19Features", "check_layers",
    "content_loss", "content_loss_paper", "content_targets", "gram_matrix", "initial_image", "load_image",
    "make_extractor", "optimize", "read_metadata", "reconstruct_content", "resize", "resolve_device", "run",
    "save_image", "style_layer_loss", "style_loss", "style_targets", "synthesize_texture",
    "to_display", "to_pil", "transfer", "tv_loss",
}


def test_the_package_keeps_its_public_names() -> None:
    assert len(nst_utils.__all__) == len(PUBLIC) and set(nst_utils.__all__) == PUBLIC
    assert PUBLIC <= set(dir(nst_utils))  # tab completion, before any is loaded
    assert {"losses", "widgets", "cli", "engine"} <= set(dir(nst_utils))
    for name in PUBLIC:
        module = importlib.import_module(f"nst_utils.{nst_utils._SUBMODULE_OF[name]}")
        assert getattr(nst_utils, name) is getattr(module, name), name
    with pytest.raises(AttributeError, match="has no attribute 'tranfser'"):
        nst_utils.tranfser  # noqa: B018


def test_every_submodule_is_reachable_as_an_attribute() -> None:
    package = Path(nst_utils.__file__).parent
    found = {p.stem for p in package.glob("*.py") if not p.stem.startswith("_")} | {"engine"}
    assert set(nst_utils._SUBMODULES) == found
    assert nst_utils.losses.gram_matrix is nst_utils.gram_matrix


def test_optimize_stays_the_loop_after_its_submodule_loads(tmp_path: Path) -> None:
    """``optimize`` names a submodule and its function; loading the submodule first (here through
    ``loop``, which imports the function) must not turn ``nst.optimize`` into the module."""
    code = ("import nst_utils.loop, nst_utils as nst\n"
            "from nst_utils import optimize\n"
            "print(callable(nst.optimize), nst.optimize is optimize is nst.loop.optimize)")
    proc = _python(code, cwd=tmp_path)
    assert proc.stdout.split() == ["True", "True"], proc.stderr


def test_the_editors_imports_are_the_lazy_ones() -> None:
    """The ``if TYPE_CHECKING:`` imports (for "go to definition") list exactly ``_EXPORTS``."""
    tree = ast.parse(Path(nst_utils.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    imported = {node.module: tuple(a.name for a in node.names) for node in block.body}
    assert imported == nst_utils._EXPORTS
