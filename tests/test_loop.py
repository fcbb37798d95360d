"""Tests for nst_utils.loop and nst_utils.live: levels, the stopping rule, callbacks, live settings."""

from __future__ import annotations

import pytest
import torch
from helpers import SMALL, rand

from nst_utils import live as live_module
from nst_utils import loop
from nst_utils.config import TransferConfig
from nst_utils.features import VGG19Features
from nst_utils.images import resize
from nst_utils.loop import run
from nst_utils.objective import MatchingObjective
from nst_utils.optimize import Plateau
from nst_utils.recipes import transfer


def _spy(monkeypatch: pytest.MonkeyPatch, module, calls: list) -> None:
    """Record ``(objective, start image, result)`` of every optimiser call made by ``module``."""
    real = module.optimize

    def spy(objective, start, **kwargs):
        out = real(objective, start, **kwargs)
        calls.append((objective, start.clone(), out))
        return out

    monkeypatch.setattr(module, "optimize", spy)


# --- levels ----------------------------------------------------------------------------------------


def test_a_pyramid_runs_each_level_with_continuous_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list = []
    _spy(monkeypatch, loop, calls)
    cfg = SMALL.replace(size=64, steps=2, pyramid=(32, 48), pyramid_steps=1)
    result = transfer(rand(1, 3, 64, 48), rand(1, 3, 64, 64, seed=1), cfg)
    assert [tuple(start.shape) for _, start, _ in calls] == [(1, 3, 32, 24), (1, 3, 48, 36), (1, 3, 64, 48)]
    assert [h.step for h in result.history] == [1, 2, 3, 4]
    assert [h.level for h in result.history] == [0, 1, 2, 2]
    assert [s.shape for s in result.segments] == [(32, 24), (48, 36), (64, 48)]
    assert result.image.shape == (1, 3, 64, 48)
    assert [(lv["width"], lv["steps"]) for lv in result.metadata()["levels"]] == [(24, 1), (36, 1), (48, 2)]


def test_each_level_starts_from_the_previous_result_upsampled(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list = []
    _spy(monkeypatch, loop, calls)
    cfg = SMALL.replace(size=64, steps=1, pyramid=(32,), pyramid_steps=2)
    transfer(rand(1, 3, 64, 64), rand(1, 3, 64, 64, seed=1), cfg)
    (_, _, coarse), (_, fine_start, _) = calls
    assert coarse.image.shape == (1, 3, 32, 32)
    torch.testing.assert_close(fine_start, resize(coarse.image, (64, 64)))


def test_the_levels_optimise_against_the_full_size_inputs_scaled_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A coarse level's targets come from the full-size photograph shrunk to its size (not from
    a smaller copy blown up): the content target at 32 px is that of the 64 px photo resized."""
    calls: list = []
    _spy(monkeypatch, loop, calls)
    content = rand(1, 3, 64, 64, seed=3)
    cfg = SMALL.replace(size=64, steps=1, pyramid=(32,), pyramid_steps=1)
    transfer(content, rand(1, 3, 64, 64, seed=1), cfg)
    objective: MatchingObjective = calls[0][0]
    expected = objective.extractor(resize(content, (32, 32)), ["relu2_1"])["relu2_1"]
    torch.testing.assert_close(objective.content_targets["relu2_1"], expected)


def test_auto_levels_follow_the_size() -> None:
    assert [s for s, _ in TransferConfig(size=2048).levels()] == [512, 1024, 2048]
    assert [s for s, _ in TransferConfig(size=1024).levels()] == [512, 1024]
    assert [s for s, _ in TransferConfig(size=1023).levels()] == [1023]
    assert [s for s, _ in TransferConfig(size=256).levels()] == [256]
    assert [s for s, _ in TransferConfig(size=2048, pyramid=()).levels()] == [2048]
    cfg = TransferConfig(size=1024, steps=40, pyramid_steps=7)
    assert cfg.levels() == [(512, 7), (1024, 40)]
    # From white noise the coarse levels go down to 128 px; from an image they stop at 512.
    assert [s for s, _ in TransferConfig(size=512, init="noise").levels()] == [128, 256, 512]
    assert [s for s, _ in TransferConfig(size=300, init="noise").levels()] == [150, 300]
    assert [s for s, _ in TransferConfig(size=255, init="noise").levels()] == [255]
    assert [s for s, _ in TransferConfig(size=512, init="style").levels()] == [512]
    assert [s for s, _ in TransferConfig(size=512, init="noise", pyramid=()).levels()] == [512]


# --- the stopping rule -------------------------------------------------------------------------------


def test_the_plateau_rule() -> None:
    rule = Plateau(tol=0.1, window=2)
    assert not rule.reached([10.0, 5.0])  # fewer steps than the window
    assert not rule.reached([10.0, 5.0, 4.0])  # 60 % better than two steps ago
    assert rule.reached([10.0, 5.0, 4.6, 4.6])  # 8 % better than two steps ago: less than 10 %
    assert not Plateau(tol=0.0, window=2).reached([1.0, 1.0, 1.0, 1.0])  # 0 never stops


def test_a_level_stops_when_its_loss_stops_improving(small_random_extractor: VGG19Features) -> None:
    cfg = SMALL.replace(steps=60, plateau_tol=0.5, plateau_window=2)
    result = run(cfg, content=rand(1, 3, 32, 32), style=rand(1, 3, 32, 32, seed=1),
                 extractor=small_random_extractor)
    assert result.steps < 60 and result.segments[-1].stopped == "converged"
    assert result.stopped is None  # converging is how a level ends, not how a run is stopped
    best = [min(h.total for h in result.history[: k + 1]) for k in range(result.steps)]
    assert best[-1] > best[-3] * 0.5  # the rule's condition holds where it stopped ...
    assert not any(best[k] > best[k - 2] * 0.5 for k in range(2, result.steps - 1))  # ... and not before


def test_a_converged_coarse_level_hands_on_to_the_next(small_random_extractor: VGG19Features) -> None:
    cfg = SMALL.replace(size=48, steps=3, pyramid=(32,), pyramid_steps=50, plateau_tol=0.5,
                        plateau_window=2)
    result = run(cfg, content=rand(1, 3, 48, 48), style=rand(1, 3, 48, 48, seed=1),
                 extractor=small_random_extractor)
    assert [s.level for s in result.segments] == [0, 1]
    assert result.segments[0].stopped == "converged" and result.segments[0].steps < 50
    assert result.image.shape == (1, 3, 48, 48)


# --- callbacks ---------------------------------------------------------------------------------------


def test_a_callback_stop_ends_the_whole_run(small_random_extractor: VGG19Features) -> None:
    cfg = SMALL.replace(steps=10, pyramid=())
    result = run(cfg, content=rand(1, 3, 32, 32), style=rand(1, 3, 32, 32, seed=1),
                 extractor=small_random_extractor, callbacks=[lambda info: info.step >= 2])
    assert result.steps == 2 and result.stopped == "callback"


def test_a_stop_at_a_coarse_level_skips_the_rest(small_random_extractor: VGG19Features) -> None:
    cfg = SMALL.replace(size=48, steps=5, pyramid=(32,), pyramid_steps=5, plateau_tol=0)
    result = run(cfg, content=rand(1, 3, 48, 48), style=rand(1, 3, 48, 48, seed=1),
                 extractor=small_random_extractor, callbacks=[lambda info: info.step >= 2])
    assert result.steps == 2 and [s.level for s in result.segments] == [0]
    assert result.image.shape == (1, 3, 48, 48)  # the best image so far, at the output's size


def test_a_callback_may_say_why_it_stops(small_random_extractor: VGG19Features) -> None:
    from nst_utils.optimize import optimize

    objective = MatchingObjective(small_random_extractor, {}, {"relu1_1": torch.zeros(1, 64, 64)})
    out = optimize(objective, rand(1, 3, 32, 32), steps=5,
                   callbacks=[lambda info: "enough" if info.step == 2 else None])
    assert out.steps == 2 and out.stopped == "enough"


# --- live settings (the panel) -----------------------------------------------------------------------


class _LiveAfter:
    """Live settings that switch from ``before`` to ``after`` once ``step`` steps have been seen."""

    def __init__(self, before: TransferConfig, after: TransferConfig, step: int) -> None:
        self.before, self.after, self.step, self.seen = before, after, step, 0

    def __call__(self) -> TransferConfig:
        return self.after if self.seen >= self.step else self.before

    def count(self, info) -> None:
        self.seen = info.step


def _live_run(cfg: TransferConfig, live: _LiveAfter, extractor: VGG19Features, callbacks=()):
    return run(cfg, content=rand(1, 3, 32, 32), style=rand(1, 3, 32, 32, seed=1), extractor=extractor,
               callbacks=[live.count, *callbacks], optimise=live_module.LiveSettings(live))


def test_a_live_ratio_change_restarts_from_the_best_image(small_random_extractor: VGG19Features,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = SMALL.replace(steps=5, ratio=1e-3, plateau_tol=0)
    live = _LiveAfter(cfg, cfg.replace(ratio=1e-2), step=2)
    calls: list = []
    _spy(monkeypatch, live_module, calls)
    images: list[torch.Tensor] = []
    result = _live_run(cfg, live, small_random_extractor, [lambda info: images.append(info.image.clone())])
    assert [(s.first_step, s.steps, s.stopped) for s in result.segments] == [(1, 2, "restart"), (3, 3, None)]
    assert [h.step for h in result.history] == [1, 2, 3, 4, 5]
    assert [h.segment for h in result.history] == [0, 0, 1, 1, 1]
    assert calls[0][0].content_weight == pytest.approx(1e-3)
    assert calls[1][0].content_weight == pytest.approx(1e-2)
    torch.testing.assert_close(calls[1][1], images[1])  # L-BFGS: the image after step 2 is the best so far
    assert result.config.ratio == 1e-2 and result.stopped is None


def test_a_live_layer_change_rebuilds_the_targets_and_a_deeper_network(
    small_random_extractor: VGG19Features,
) -> None:
    cfg = SMALL.replace(steps=4, plateau_tol=0)
    live = _LiveAfter(cfg, cfg.replace(content_layers=("relu3_1",)), step=2)
    result = _live_run(cfg, live, small_random_extractor)
    assert result.steps == 4 and len(result.segments) == 2
    assert result.segments[-1].config.content_layers == ("relu3_1",)
    assert "relu3_1" in result.extractor.layer_names  # built deeper for the new layer


def test_lowering_the_live_step_count_ends_the_level(small_random_extractor: VGG19Features) -> None:
    cfg = SMALL.replace(steps=10, plateau_tol=0)
    live = _LiveAfter(cfg, cfg.replace(steps=3), step=1)
    result = _live_run(cfg, live, small_random_extractor)
    assert result.steps == 3 and len(result.segments) == 1 and result.stopped is None
    assert result.segments[0].stopped == "steps lowered"


def test_raising_the_live_step_count_runs_on(small_random_extractor: VGG19Features) -> None:
    cfg = SMALL.replace(steps=2, plateau_tol=0)
    live = _LiveAfter(cfg, cfg.replace(steps=4), step=1)
    result = _live_run(cfg, live, small_random_extractor)
    assert result.steps == 4 and [s.steps for s in result.segments] == [2, 2]
