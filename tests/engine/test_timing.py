"""Tests for nst_utils.engine.timing: the FLOP count, the calibration's cache, the time estimate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nst_utils.config import DEFAULT, PAPER
from nst_utils.engine import timing
from nst_utils.engine.hardware import Machine

pytestmark = pytest.mark.engine

CPU = Machine(torch.device("cpu"), "float32", "direct")
#: A made-up machine: 2 s to build the network, 10 ms + 5 ms per GFLOP an evaluation.
CALIBRATED = timing.Calibration(build_seconds=2.0, fixed=0.01, per_gflop=0.005)


def test_flops_of_one_layer_are_forward_plus_equal_backward() -> None:
    conv1_1 = 2 * 9 * 3 * 64 * 32 * 32
    assert timing.evaluation_flops((32, 32), ["relu1_1"], []) == 2 * conv1_1
    gram = 2 * 64**2 * 32 * 32
    assert timing.evaluation_flops((32, 32), [], ["relu1_1"]) == 2 * conv1_1 + 2 * gram


def test_the_paper_objective_costs_four_times_more_at_twice_the_side() -> None:
    small = timing.evaluation_flops((128, 128), PAPER.content_layers, PAPER.style_layers)
    large = timing.evaluation_flops((256, 256), PAPER.content_layers, PAPER.style_layers)
    assert large == pytest.approx(4 * small, rel=0.01)


def _estimate(config, shape=(384, 512)) -> timing.TimeEstimate:
    return timing.estimate_seconds(config, shape, CPU, calibrated=CALIBRATED)


def test_the_estimate_grows_with_the_size_as_the_work_does() -> None:
    cfg = PAPER.replace(size=512, steps=100)
    base, wide = _estimate(cfg.replace(size=256), (192, 256)), _estimate(cfg, (384, 512))
    work = (timing.evaluation_flops((384, 512), cfg.content_layers, cfg.style_layers)
            / timing.evaluation_flops((192, 256), cfg.content_layers, cfg.style_layers))
    build = CALIBRATED.build_seconds
    # The evaluations' share grows with the FLOPs; only the per-evaluation overhead does not.
    assert 0.7 * work < (wide.seconds - build) / (base.seconds - build) <= work


def test_the_estimate_grows_with_the_steps() -> None:
    few, many = _estimate(PAPER.replace(steps=50)), _estimate(PAPER.replace(steps=200))
    assert many.seconds - CALIBRATED.build_seconds == pytest.approx(
        4 * (few.seconds - CALIBRATED.build_seconds), rel=0.15)


def test_the_stopping_rule_shortens_the_expected_time_not_the_longest() -> None:
    estimate = _estimate(DEFAULT.replace(size=512))
    assert estimate.seconds < estimate.at_most
    assert estimate.at_most == pytest.approx(_estimate(DEFAULT.replace(size=512, plateau_tol=0)).seconds)
    expected = timing.expected_steps(DEFAULT, 500)
    assert expected == timing.TYPICAL_LEVEL_STEPS and timing.expected_steps(PAPER, 500) == 500
    assert timing.expected_steps(DEFAULT, 30) == 30  # never more than the level's most steps


def test_coarse_levels_add_their_cheaper_steps() -> None:
    one = _estimate(PAPER.replace(size=1024, steps=100), (768, 1024))
    two = _estimate(PAPER.replace(size=1024, steps=100, pyramid=(512,), pyramid_steps=100), (768, 1024))
    at_512 = _estimate(PAPER.replace(size=512, steps=100), (384, 512))
    extra = two.seconds - one.seconds
    assert extra == pytest.approx(at_512.seconds - CALIBRATED.build_seconds, rel=0.01)


def test_the_calibration_is_measured_once_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path))
    calls = []
    monkeypatch.setattr(timing, "measure", lambda machine, config: calls.append(1) or CALIBRATED)
    assert timing.calibration(CPU, PAPER) == CALIBRATED
    assert timing.calibration(CPU, PAPER) == CALIBRATED
    assert len(calls) == 1
    (cached,) = json.loads((tmp_path / "timing.json").read_text()).values()
    assert cached == {"build_seconds": 2.0, "fixed": 0.01, "per_gflop": 0.005}
    timing.calibration(CPU, PAPER.replace(padding="reflect"))  # another setting, another entry
    assert len(calls) == 2


@pytest.mark.slow
def test_a_real_calibration_is_plausible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path))
    measured = timing.measure(CPU, PAPER.replace(network_weights="random"))
    assert measured.build_seconds > 0 and measured.per_gflop > 0
    # An evaluation at 128 px is predicted within a factor of two of a fresh measurement's order.
    assert 0 < measured.evaluation_seconds(timing.evaluation_flops(
        (128, 128), PAPER.content_layers, PAPER.style_layers)) < 10


def test_the_forecast_says_where_how_long_and_how_much(monkeypatch: pytest.MonkeyPatch) -> None:
    from nst_utils import engine

    monkeypatch.setattr(timing, "calibration", lambda machine, config: CALIBRATED)
    said = engine.forecast(DEFAULT.replace(size=512, device="cpu"), (384, 512))
    assert said.machine.device.type == "cpu" and said.too_large is None
    assert said.memory > 0 and 0 < said.seconds < said.at_most
    expected = timing.estimate_seconds(DEFAULT.replace(size=512, device="cpu"), (384, 512), said.machine,
                                       calibrated=CALIBRATED)
    assert (said.seconds, said.at_most) == (expected.seconds, expected.at_most)
    assert engine.peak_memory("cpu") > 0
