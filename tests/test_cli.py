"""Tests for nst_utils.cli: ``nst transfer | content | style | samples`` and its exit statuses.

Most cases call :func:`nst_utils.cli.run` in-process (fast); two run ``python -m nst_utils`` as
a real subprocess to check what a user sees: the exit status and one line on stderr.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, text_file, truncated_jpeg
from PIL import Image

from nst_utils import cli, image_files
from nst_utils.callbacks import ProgressBar
from nst_utils.images import read_metadata
from nst_utils.samples import SAMPLES, sample_image

FAST = ["--size", "64", "--steps", "3", "--quiet"]


def _run(argv: list[str]) -> tuple[int, str, str]:
    """``cli.run(argv)`` with its stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.run([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _assert_usage_error(code: int, stdout: str, stderr: str, *fragments: str) -> None:
    assert code == cli.EXIT_USAGE == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("nst: error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert stdout == ""


@pytest.fixture(scope="module")
def transfer_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, str, Path]:
    """One end-to-end ``nst transfer`` at 64 px, shared by the tests that inspect it."""
    out = tmp_path_factory.mktemp("cli") / "out.png"
    code, stdout, stderr = _run(["transfer", "hopper", "mosaic", "-o", out, *FAST, "--json"])
    return code, stdout, stderr, out


# --- end to end ----------------------------------------------------------------------------------


def test_transfer_end_to_end(transfer_run: tuple[int, str, str, Path]) -> None:
    code, _, stderr, out = transfer_run
    assert code == 0, stderr
    assert stderr == ""  # --quiet: no progress bar
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert max(im.size) == 64
        assert im.size == (55, 64)  # hopper is 512 x 600
    assert [p.name for p in out.parent.iterdir()] == ["out.png"]  # no temporary files


def test_transfer_json_summary(transfer_run: tuple[int, str, str, Path]) -> None:
    _, stdout, _, out = transfer_run
    assert len(stdout.strip().splitlines()) == 1
    summary = json.loads(stdout)
    assert isinstance(summary, dict)
    for key in ("config", "ran", "initial_loss", "final_loss", "steps", "seconds", "peak_memory_mb"):
        assert key in summary, key
    assert summary["steps"] == 3
    assert summary["output"] == str(out)
    assert set(summary["initial_loss"]) == set(summary["final_loss"]) == {"content", "style"}
    first, last = summary["initial_loss"], summary["final_loss"]
    assert sum(last.values()) < sum(first.values())
    assert summary["seconds"] > 0 and summary["peak_memory_mb"] > 0
    assert (summary["command"], summary["content"], summary["style"]) == ("transfer", "hopper", "mosaic")
    params = summary["config"]
    assert params["ratio"] == 1e-3 and params["size"] == 64 and params["steps"] == 3
    assert summary["stopped"] is None


def test_transfer_metadata(transfer_run: tuple[int, str, str, Path]) -> None:
    _, stdout, _, out = transfer_run
    meta = read_metadata(out)
    params = meta["config"]
    assert params == json.loads(stdout)["config"]
    assert (meta["command"], meta["content"], meta["style"]) == ("transfer", "hopper", "mosaic")
    assert params["ratio"] == 1e-3 and params["style_weight"] == 1.0
    assert params["content_layers"] == ["relu4_2"]
    assert params["style_layers"] == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    assert params["seed"] == 0 and params["network_weights"] == "caffe" and params["pooling"] == "avg"
    assert params["conv_algorithm"] == "auto"  # asked for; what ran is recorded beside it:
    assert meta["ran"] == {"device": "cpu", "precision": "float32", "conv_algorithm": "winograd"}
    assert meta["steps"] == 3
    assert set(meta["final_loss"]) == {"content", "style"}


def test_transfer_says_how_long_before_it_starts(transfer_run: tuple[int, str, str, Path],
                                                 tmp_path: Path) -> None:
    _, stdout, _, _ = transfer_run
    summary = json.loads(stdout)
    assert 0 < summary["estimated_seconds"] <= summary["estimated_seconds_at_most"]
    assert summary["levels"] == [{"height": 64, "width": 55, "steps": 3, "stopped": None}]
    code, _, stderr = _run(["transfer", "hopper", "mosaic", "-o", tmp_path / "o.png", "--size", "64",
                            "--steps", "2"])
    assert code == 0, stderr
    first = stderr.splitlines()[0]
    assert first.startswith("nst: transfer 55x64 px (64 px) on cpu: about ") and "at most" in first, first


def test_a_run_plans_its_machine_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The forecast's machine is the one the run uses: planned once, not again by the run."""
    from nst_utils import engine
    from nst_utils.engine import hardware, memory, network

    planned = []

    def counted(config):
        planned.append(config)
        return hardware.plan(config)

    for module in (engine, memory, network):  # every place that plans a machine
        monkeypatch.setattr(module, "plan", counted)
    code, stdout, stderr = _run(["transfer", "hopper", "mosaic", "-o", tmp_path / "o.png", *FAST, "--json"])
    assert code == 0, stderr
    assert len(planned) == 1
    assert json.loads(stdout)["ran"] == hardware.plan(planned[0]).to_dict()


def test_the_schedule_options(tmp_path: Path) -> None:
    code, stdout, stderr = _run(["transfer", "hopper", "mosaic", "-o", tmp_path / "o.png", "--size", "64",
                                 "--steps", "2", "--pyramid", "32,48", "--pyramid-steps", "1", "--quiet",
                                 "--json", "--plateau-tol", "0"])
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert [(level["width"], level["steps"]) for level in summary["levels"]] == [(28, 1), (41, 1), (55, 2)]
    assert summary["config"]["pyramid"] == [32, 48] and summary["config"]["plateau_tol"] == 0
    code, stdout, stderr = _run(["transfer", "hopper", "mosaic", "-o", tmp_path / "p.png", "--size", "64",
                                 "--steps", "2", "--pyramid", "none", "--quiet", "--json"])
    assert code == 0, stderr
    assert json.loads(stdout)["config"]["pyramid"] == []
    bad = ["transfer", "hopper", "mosaic", "-o", tmp_path / "q.png", "--plateau-tol", "1"]
    _assert_usage_error(*_run(bad), "--plateau-tol", "expected a number in [0, 1)")


def test_same_seed_same_bytes(transfer_run: tuple[int, str, str, Path], tmp_path: Path) -> None:
    _, _, _, first = transfer_run
    second = tmp_path / "again.png"
    code, _, stderr = _run(["transfer", "hopper", "mosaic", "-o", second, *FAST])
    assert code == 0, stderr
    assert second.read_bytes() == first.read_bytes()


def test_content_command(tmp_path: Path) -> None:
    out = tmp_path / "content.png"
    code, stdout, stderr = _run(["content", "hopper", "--layer", "relu1_2", "-o", out, "--size", "48",
                                 "--steps", "2", "--quiet", "--json"])
    assert code == 0, stderr
    with Image.open(out) as im:
        assert im.size == (41, 48)
    meta = read_metadata(out)
    assert meta["command"] == "content" and meta["image"] == "hopper"
    assert meta["config"]["content_layers"] == ["relu1_2"] and meta["config"]["style_layers"] == []
    assert meta["config"]["size"] == 48
    assert set(json.loads(stdout)["final_loss"]) == {"content"}


def test_style_command(tmp_path: Path) -> None:
    out = tmp_path / "style.png"
    code, _, stderr = _run(["style", "mosaic", "--layers", "relu1_1,relu2_1", "--layer-weights", "0.25,0.75",
                            "-o", out, "--size", "48", "--steps", "2", "--quiet"])
    assert code == 0, stderr
    with Image.open(out) as im:
        assert im.size == (48, 48)
    meta = read_metadata(out)
    assert meta["command"] == "style" and meta["config"]["content_layers"] == []
    assert meta["config"]["style_layers"] == ["relu1_1", "relu2_1"]
    assert meta["config"]["style_layer_weights"] == [0.25, 0.75]


def test_samples_lists_the_names() -> None:
    code, stdout, stderr = _run(["samples"])
    assert code == 0 and stderr == ""
    names = [line.split()[0] for line in stdout.strip().splitlines()]
    assert names == list(SAMPLES)


# --- the ratio and the weights -------------------------------------------------------------------


def _config(*extra: str):
    return cli._config(cli.build_parser().parse_args(["transfer", "a.png", "b.png", "-o", "o.png", *extra]))


def test_ratio_from_weights() -> None:
    assert _config().ratio == 1e-3 and _config().style_weight == 1.0  # the paper's defaults
    assert _config("--ratio", "0.01").ratio == 0.01
    cfg = _config("--content-weight", "0.05", "--style-weight", "10")
    assert cfg.ratio == pytest.approx(0.005)  # alpha / beta
    assert cfg.style_weight == 10.0 and cfg.content_weight == pytest.approx(0.05)
    assert _config("--content-weight", "0.02").ratio == pytest.approx(0.02)  # beta defaults to 1
    cfg = _config("--ratio", "0.1", "--style-weight", "4")
    assert cfg.ratio == 0.1 and cfg.content_weight == pytest.approx(0.4)


def test_ratio_and_content_weight_together_is_a_usage_error(tmp_path: Path) -> None:
    out = tmp_path / "o.png"
    code, stdout, stderr = _run(["transfer", "hopper", "mosaic", "-o", out, "--ratio", "0.01",
                                 "--content-weight", "0.1", *FAST])
    _assert_usage_error(code, stdout, stderr, "either --ratio or --content-weight")
    assert not out.exists()


# --- bad input: exit 2, one line, no output ------------------------------------------------------


def _tiny_png(folder: Path) -> Path:
    path = folder / "tiny.png"
    Image.new("RGB", (20, 20), (9, 9, 9)).save(path)
    return path


BAD_IMAGES = {
    "missing": (lambda d: d / "nope.jpg", "no such file"),
    "directory": (lambda d: d, "is a directory"),
    "not an image": (text_file, "not an image"),
    "truncated": (truncated_jpeg, "corrupt or truncated"),
    "too small": (_tiny_png, "at least 32 pixels"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
@pytest.mark.parametrize("command", ["transfer-content", "transfer-style", "content", "style"])
def test_bad_image(tmp_path: Path, case: str, command: str) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    make, message = BAD_IMAGES[case]
    bad = make(inputs)
    out = tmp_path / "out.png"
    argv = {
        "transfer-content": ["transfer", bad, "mosaic"],
        "transfer-style": ["transfer", "hopper", bad],
        "content": ["content", bad],
        "style": ["style", bad],
    }[command]
    code, stdout, stderr = _run([*argv, "-o", out, *FAST])
    _assert_usage_error(code, stdout, stderr, message, bad.name)
    assert not out.exists()


def test_decompression_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(big)
    monkeypatch.setattr(image_files, "MAX_PIXELS", 1000)
    out = tmp_path / "out.png"
    code, stdout, stderr = _run(["transfer", big, "mosaic", "-o", out, *FAST])
    _assert_usage_error(code, stdout, stderr, "big.png", "decompression bomb")
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--content-layers", "relu9_9"], ["unknown layer 'relu9_9'", "expected one of conv1_1"]),
        (["--style-layers", "relu1_1,conv_4"], ["unknown layer 'conv_4'"]),
        (["--ratio", "-1"], ["--ratio", "expected a positive number, got -1"]),
        (["--ratio", "0"], ["expected a positive number, got 0"]),
        (["--ratio", "nan"], ["expected a positive number"]),
        (["--style-weight", "abc"], ["expected a number, got 'abc'"]),
        (["--steps", "0"], ["expected a positive number, got 0"]),
        (["--size", "16"], ["size 16 is out of range; expected 32..4096"]),
        (["--optimizer", "sgd"], ["invalid choice: 'sgd'"]),
        (["--conv-algorithm", "fft"], ["invalid choice: 'fft'"]),
        (["--style-layer-weights", "1,2"], ["2 style layer weights given for 5 style layers"]),
        (["--style-layer-weights", "1,-2,1,1,1"], ["expected a number >= 0, got -2"]),
        (["--init", "nothing_here.png"], ["nothing_here.png: no such file"]),
        (["--preserve-color", "sepia"], ["--preserve-color", "invalid choice: 'sepia'"]),
        (["--padding", "mirror"], ["invalid choice: 'mirror'"]),
        (["--style-blend", "1,2"], ["2 style weights given for 1 style images"]),
        (["--mask", "nothing_here.png"], ["nothing_here.png: no such file"]),
        (["--mask", "a.png", "--mask", "b.png"], ["2 --mask given for 1 styles"]),
        (["--split", "horizontal"], ["--split needs exactly two styles, got 1"]),
    ],
)
def test_bad_option(tmp_path: Path, extra: list[str], fragments: list[str]) -> None:
    out = tmp_path / "out.png"
    code, stdout, stderr = _run(["transfer", "hopper", "mosaic", "-o", out, *FAST, *extra])
    _assert_usage_error(code, stdout, stderr, *fragments)
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "the following arguments are required: command"),
        (["paint"], "invalid choice: 'paint'"),
        (["transfer", "hopper", "mosaic"], "the following arguments are required: -o/--output"),
        (["content", "hopper", "--layer", "relu1_1,relu2_1", "-o", "OUT"], "--layer takes exactly one layer"),
        (["style", "mosaic", "--layers", "relu1_1", "--layer-weights", "1,1", "-o", "OUT"],
         "2 --layer-weights given for 1 --layers"),
    ],
)
def test_usage_errors(tmp_path: Path, argv: list[str], fragment: str) -> None:
    out = tmp_path / "out.png"
    code, stdout, stderr = _run([out if a == "OUT" else a for a in argv])
    _assert_usage_error(code, stdout, stderr, fragment)
    assert not out.exists()


@pytest.mark.parametrize("name", ["out.jpg", "out", "out.PNG.bak"])
def test_output_must_be_png(tmp_path: Path, name: str) -> None:
    code, stdout, stderr = _run(["transfer", "hopper", "mosaic", "-o", tmp_path / name, *FAST])
    _assert_usage_error(code, stdout, stderr, "output must be a .png file")
    assert list(tmp_path.iterdir()) == []


def test_output_folder_missing(tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "out.png"
    code, stdout, stderr = _run(["transfer", "hopper", "mosaic", "-o", out, *FAST])
    _assert_usage_error(code, stdout, stderr, "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_output_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.png").mkdir()
    code, stdout, stderr = _run(["transfer", "hopper", "mosaic", "-o", tmp_path / "dir.png", *FAST])
    _assert_usage_error(code, stdout, stderr, "is a directory")


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    code, stdout, stderr = _run(["transfer", "hopper", "mosaic", "-o", out, *FAST])
    _assert_usage_error(code, stdout, stderr, "already exists; pass --overwrite")
    assert out.read_bytes() == b"precious"
    assert list(tmp_path.iterdir()) == [out]


def test_overwrite_replaces(tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    out.write_bytes(b"old")
    code, _, stderr = _run(["style", "mosaic", "--layers", "relu1_1", "-o", out, "--size", "32",
                            "--steps", "1", "--quiet", "--overwrite"])
    assert code == 0, stderr
    with Image.open(out) as im:
        assert im.format == "PNG"


@pytest.mark.parametrize("role", ["content", "style", "init"])
def test_output_equal_to_an_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, role: str) -> None:
    image = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(image)
    before = image.read_bytes()
    monkeypatch.chdir(tmp_path)
    argv = {
        "content": ["transfer", image, "mosaic"],
        "style": ["transfer", "hopper", "photo.png"],  # a relative spelling of the same file
        "init": ["transfer", "hopper", "mosaic", "--init", image],
    }[role]
    code, stdout, stderr = _run([*argv, "-o", image, *FAST, "--overwrite"])
    _assert_usage_error(code, stdout, stderr, "output would overwrite an input image")
    assert image.read_bytes() == before


def test_failure_during_the_run_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr("nst_utils.recipes.transfer", broken)
    out = tmp_path / "out.png"
    code, _, stderr = _run(["transfer", "hopper", "mosaic", "-o", out, *FAST])
    assert code == cli.EXIT_FAILURE == 1
    assert stderr.strip().splitlines() == ["nst: failed: RuntimeError: out of memory"]
    assert not out.exists()


# --- Ctrl-C --------------------------------------------------------------------------------------


def test_ctrl_c_writes_best_image_so_far(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_call = ProgressBar.__call__

    def ctrl_c_at_step_2(self: ProgressBar, info) -> None:
        real_call(self, info)
        if info.step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(ProgressBar, "__call__", ctrl_c_at_step_2)
    out = tmp_path / "out.png"
    code, stdout, stderr = _run(["transfer", "hopper", "mosaic", "-o", out, "--size", "48", "--steps", "10",
                                 "--json"])  # not --quiet: the progress bar is the callback
    assert code == cli.EXIT_INTERRUPTED == 130
    assert "Traceback" not in stderr
    assert "interrupted after 2 steps; best image so far written to" in stderr.strip().splitlines()[-1]
    summary = json.loads(stdout)
    assert summary["stopped"] == "interrupted" and summary["steps"] == 2
    with Image.open(out) as im:
        assert im.size == (41, 48)
    meta = read_metadata(out)
    assert meta["stopped"] == "interrupted" and meta["steps"] == 2


def test_ctrl_c_before_optimisation_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args, **kwargs) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("nst_utils.engine.build_extractor", interrupted)
    out = tmp_path / "out.png"
    code, _, stderr = _run(["transfer", "hopper", "mosaic", "-o", out, *FAST])
    assert code == 130
    assert stderr.strip().splitlines() == ["nst: interrupted before optimisation started; nothing written"]
    assert not out.exists()


# --- as a real process ---------------------------------------------------------------------------


def _subprocess(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "nst_utils", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("make_argv", "fragment"),
    [
        (lambda d: ["transfer", str(d / "missing.jpg"), "mosaic", "-o", "out.png"],
         "missing.jpg: no such file"),
        (lambda d: ["transfer", str(truncated_jpeg(d)), "mosaic", "-o", "out.png"], "corrupt or truncated"),
    ],
)
def test_subprocess_reports_one_line(tmp_path: Path, make_argv, fragment: str) -> None:
    proc = _subprocess(make_argv(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("nst: error: ") and fragment in lines[0]
    assert proc.stdout == ""
    assert not (tmp_path / "out.png").exists()


def test_two_styles_split_between_sky_and_ground(tmp_path: Path) -> None:
    out = tmp_path / "split.png"
    code, _, stderr = _run(["transfer", "hopper", "mosaic", "swirls", "--split", "horizontal",
                                 "--split-at", "0.3", "--preserve-color", "histogram", "-o", out, *FAST])
    assert code == 0, stderr
    meta = read_metadata(out)
    assert meta["style"] == ["mosaic", "swirls"] and meta["masks"] == "horizontal split at 0.3"
    assert meta["config"]["preserve_color"] == "histogram"


def test_a_mask_of_another_aspect_is_refused_and_nothing_written(tmp_path: Path) -> None:
    masks = []
    for name, size in (("top.png", (64, 64)), ("bottom.png", (64, 64))):
        Image.new("L", size, 255).save(tmp_path / name)
        masks += ["--mask", tmp_path / name]
    out = tmp_path / "out.png"
    code, stdout, stderr = _run(["transfer", "hopper", "mosaic", "swirls", *masks, "-o", out, *FAST])
    _assert_usage_error(code, stdout, stderr, "top.png: mask is 64x64 pixels, a different shape from the "
                        "image (55x64); draw it over the image at any size of the same aspect ratio")
    assert not out.exists()


def test_masks_drawn_at_the_photographs_resolution_work_at_any_size(tmp_path: Path) -> None:
    photo = sample_image("tubingen")  # 1024 x 768; the run is at 64 x 48
    sky = Image.new("L", photo.size, 0)
    sky.paste(255, (0, 0, photo.width, int(photo.height * 0.4)))
    sky.save(tmp_path / "sky.png")
    Image.eval(sky, lambda v: 255 - v).save(tmp_path / "town.png")
    out = tmp_path / "out.png"
    code, _, stderr = _run(["transfer", "tubingen", "starry_night", "scream", "--mask", tmp_path / "sky.png",
                            "--mask", tmp_path / "town.png", "-o", out, "--network-weights", "random",
                            "--size", "64", "--steps", "2", "--quiet"])
    assert code == 0, stderr
    with Image.open(out) as im:
        assert im.size == (64, 48)
    assert read_metadata(out)["masks"] == [str(tmp_path / "sky.png"), str(tmp_path / "town.png")]


def test_several_styles_blend_and_circular_padding(tmp_path: Path) -> None:
    out = tmp_path / "blend.png"
    code, _, stderr = _run(["transfer", "hopper", "mosaic", "swirls", "--style-blend", "3,1",
                            "--padding", "circular", "-o", out, *FAST])
    assert code == 0, stderr
    config = read_metadata(out)["config"]
    assert config["style_blend"] == [3.0, 1.0] and config["padding"] == "circular"
