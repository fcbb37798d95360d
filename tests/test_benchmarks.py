"""Smoke tests of the benchmark (``python -m benchmarks``): tiny sizes, two steps, no timings checked."""

from __future__ import annotations

import pytest
import torch
from helpers import rand

import nst_utils as nst
from benchmarks import child, naive, report

SIZE = 64


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    return child.bench_images(SIZE)


def test_naive_reference_and_nst_utils_evaluate_the_same_objective(pair, paper_extractor) -> None:
    """Identical weights, preprocessing, normalisation, layers and loss factors: same loss."""
    content, style = pair
    cfg = child.bench_config(SIZE, 2)
    model, content_losses, style_losses = naive.build_model(
        content, style, cfg.content_layers, cfg.style_layers, cfg.pooling)
    objective = child.bench_objective(cfg, paper_extractor, content, style)
    image = rand(*content.shape, seed=1)
    with torch.no_grad():
        terms = objective(image)
        model(image)
    ours_content, ours_style = float(terms["content"]), float(terms["style"])
    ref_content = cfg.content_weight * float(sum(cl.loss for cl in content_losses))
    ref_style = cfg.style_weight * float(sum(sl.loss for sl in style_losses)) / len(style_losses)
    assert ref_content == pytest.approx(ours_content, rel=1e-3)
    assert ref_style == pytest.approx(ours_style, rel=1e-3)
    reference = naive.evaluate(model, content_losses, style_losses, image,
                               cfg.content_weight, cfg.style_weight)
    assert reference == pytest.approx(ours_content + ours_style, rel=1e-3)


@pytest.mark.slow
def test_child_runs_both_implementations(pair, paper_extractor) -> None:
    keys = {"impl", "precision", "dtype", "size", "s_per_step", "s_per_eval", "evals_per_step", "peak_bytes",
            "final_loss", "threshold", "time_to_quality_s", "steps_run"}
    ref = child.run_naive({"impl": "naive", "size": SIZE, "steps": 2, "warmup": 1, "quality_steps": 2})
    ours = child.run_nst({"impl": "nst", "size": SIZE, "steps": 2, "warmup": 1, "precision": "float32",
                          "threshold": ref["threshold"], "max_steps": 20})
    for row in (ref, ours):
        assert keys <= row.keys()
        assert row["size"] == SIZE and row["s_per_step"] > 0 and row["peak_bytes"] > 0
        assert 0 < row["s_per_eval"] < 10 * row["s_per_step"] + 1
    assert ours["dtype"] == "float32" and ours["winograd"] is True  # conv_algorithm "auto" on a CPU
    assert ref["steps_run"] == 2
    assert ref["threshold"] == pytest.approx(min(ref["final_loss"], ref["best_loss"]))
    # The reference's first evaluation is at the shared noise start: nst_utils' objective there.
    content, style = pair
    cfg = child.bench_config(SIZE, 2)
    start = nst.initial_image(cfg.init, content=content, seed=cfg.seed)
    with torch.no_grad():
        at_start = float(sum(child.bench_objective(cfg, paper_extractor, content, style)(start).values()))
    assert ref["first_loss"] == pytest.approx(at_start, rel=1e-3)
    assert ours["final_loss"] < at_start and ref["final_loss"] < at_start
    assert ours["time_to_quality_s"] is not None, "L-BFGS-B did not reach 2 reference steps in 20"
    text = report.table([ref, ours], {SIZE: {"float32": 0.01, "bfloat16": 0.01}})
    assert text.count("\n") == 3 and "naive reference" in text and "nst_utils" in text


def test_settings_that_resolve_alike_run_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU without native bfloat16 every precision is float32 and "auto" is Winograd."""
    from benchmarks import __main__ as bench

    monkeypatch.setattr("nst_utils.engine.hardware.native_bfloat16", lambda device: False)
    specs: list[dict] = []
    monkeypatch.setattr(bench, "run_child",
                        lambda spec, timeout=None: specs.append(spec) or {"s_per_step": 1.0})
    args = bench.build_parser().parse_args(["--sizes", "64", "--impl", "nst", "--pyramid-steps", "0",
                                            "--precisions", "default,auto,float32",
                                            "--conv-algorithms", "auto,direct,winograd"])
    bench.run_benchmark(args, torch.device("cpu"))
    # Every variant with the first optimiser, then the other optimisers with the default settings.
    assert [(s["precision"], s["conv_algorithm"], s["optimizer"]) for s in specs] == [
        ("float32", "auto", "lbfgs"), ("float32", "direct", "lbfgs"), ("float32", "auto", "lbfgs-scipy")]


def _row(**values):
    base = {"impl": "nst", "precision": "float32", "dtype": "float32", "size": 256, "s_per_step": 1.2,
            "s_per_eval": 1.0, "evals_per_step": 1.0, "peak_bytes": 2**30, "final_loss": 0.5,
            "threshold": None, "steps_run": 20}
    return {**base, **values}


def test_table_holds_every_row_of_a_size_to_the_network_floor() -> None:
    floors = {256: {"float32": 0.8, "bfloat16": 0.4, "float32 winograd": 0.5}}
    rows = [_row(impl="naive", winograd=False, s_per_step=1.6, s_per_eval=1.6), _row(winograd=True)]
    text = report.table(rows, floors)
    naive_line, winograd_line = text.splitlines()[2:]
    assert "| 0.800 | 2.00x | 2.00x |" in naive_line
    assert "nst_utils (Winograd)" in winograd_line and "| 0.800 | 1.25x | 1.50x |" in winograd_line
    (note,) = report.winograd_notes(rows, floors)
    assert note.startswith("256 px, Winograd") and "0.500 s/eval" in note and "2.00x" in note


@pytest.mark.slow
def test_the_gpu_check_runs_its_checks_on_the_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/gpu_check.py at a tiny size (48 px) on the CPU: the script works before a GPU is there."""
    from benchmarks import gpu_check

    assert gpu_check.main(["--device", "cpu", "--size", "48", "--steps", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("device: CPU")
    rows = [line for line in out if line.startswith(("| transfer", "| panel", "| two regions"))]
    assert len(rows) == 4 and all(row.rstrip().endswith("| True |") for row in rows), out
