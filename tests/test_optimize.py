"""Tests for nst_utils.optimize: the one loop (our L-BFGS, SciPy's L-BFGS-B, Adam) and its callbacks."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import replace
from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F
from helpers import rand
from torch import Tensor

from nst_utils.callbacks import Every, StopFlag
from nst_utils.config import OPTIMIZERS
from nst_utils.optimize import OptimizeResult, StepInfo, optimize

#: The two L-BFGS implementations (ours in PyTorch, SciPy's L-BFGS-B) keep the same contract.
LBFGS = ("lbfgs", "lbfgs-scipy")
ADAM = {"adam_lr": 0.05}  # on these toy problems the default 0.02 needs more steps than we want


def _options(optimizer: str) -> dict:
    return ADAM if optimizer == "adam" else {}


def _toy() -> tuple[Callable[[Tensor], dict[str, Tensor]], Tensor]:
    """A non-convex objective that neither optimiser solves in a few steps, and its start."""
    return conv_objective(rand(1, 3, 16, 16, seed=7)), rand(1, 3, 16, 16, seed=8)


class Recorder:
    """Wraps an objective; keeps every evaluated image and its total (the oracle for "best")."""

    def __init__(self, objective: Callable[[Tensor], dict[str, Tensor]]) -> None:
        self.objective = objective
        self.images: list[Tensor] = []
        self.totals: list[float] = []

    def __call__(self, x: Tensor) -> dict[str, Tensor]:
        terms = self.objective(x)
        self.images.append(x.detach().clone())
        self.totals.append(float(sum(t.detach() for t in terms.values())))
        return terms

    def best(self) -> tuple[float, Tensor]:
        i = min(range(len(self.totals)), key=self.totals.__getitem__)
        return self.totals[i], self.images[i]


def mse_to(target: Tensor) -> Callable[[Tensor], dict[str, Tensor]]:
    return lambda x: {"mse": (x - target).pow(2).sum()}


def conv_objective(target: Tensor) -> Callable[[Tensor], dict[str, Tensor]]:
    """A tiny fixed random conv + ReLU 'feature' loss, like a one-layer content loss."""
    weight = torch.randn(8, 3, 3, 3, generator=torch.Generator().manual_seed(1)) * 0.5
    feats = lambda x: F.relu(F.conv2d(x, weight, padding=1))
    with torch.no_grad():
        p = feats(target)
    return lambda x: {"features": 0.5 * (feats(x) - p).pow(2).sum(), "pixels": 1e-3 * x.pow(2).sum()}


# --- smoke: both optimisers reduce the loss ------------------------------------------------------


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_reduces_mse_to_target(optimizer: str) -> None:
    target = rand(1, 3, 12, 12)
    init = torch.full_like(target, 0.5)
    initial = float(mse_to(target)(init)["mse"])
    steps = 10 if optimizer in LBFGS else 30
    result = optimize(mse_to(target), init, steps=steps, optimizer=optimizer, **_options(optimizer))
    assert isinstance(result, OptimizeResult)
    assert result.image.shape == init.shape and result.image.dtype == torch.float32
    assert 1 <= result.steps == len(result.history) <= steps  # L-BFGS solves this in a few steps
    assert result.stopped is None
    assert result.best_total < 0.05 * initial
    torch.testing.assert_close(result.image, target, atol=0.08, rtol=0)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_reduces_conv_feature_loss(optimizer: str) -> None:
    target = rand(1, 3, 16, 16, seed=2)
    objective = conv_objective(target)
    init = rand(1, 3, 16, 16, seed=3)
    initial = float(sum(objective(init).values()))
    result = optimize(objective, init, steps=15, optimizer=optimizer, **_options(optimizer))
    assert result.best_total < 0.3 * initial
    assert set(result.history[-1].losses) == {"features", "pixels"}
    assert result.losses("features")[-1] < result.losses("features")[0]


def test_init_is_not_modified() -> None:
    init = rand(1, 3, 8, 8)
    before = init.clone()
    for optimizer in OPTIMIZERS:
        optimize(mse_to(torch.zeros_like(init)), init, steps=2, optimizer=optimizer)
    assert torch.equal(init, before)


# --- the box constraint --------------------------------------------------------------------------


def _out_of_box_target() -> Tensor:
    target = torch.full((1, 3, 8, 8), 0.3)
    target[..., :4, :] = 1.5  # top half above the box
    target[..., 4:, :4] = -0.5  # bottom-left quarter below it
    return target


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_box_constraint(optimizer: str) -> None:
    target = _out_of_box_target()
    rec = Recorder(mse_to(target))
    reported: list[Tensor] = []
    init = rand(1, 3, 8, 8, seed=4) * 1.4 - 0.2  # partly outside the box too
    steps = 10 if optimizer in LBFGS else 60
    result = optimize(rec, init, steps=steps, optimizer=optimizer,
                      callbacks=[lambda i: reported.append(i.image)], **_options(optimizer))
    assert len(reported) == result.steps
    every = [*rec.images, *reported, result.image]
    assert all(float(x.min()) >= 0.0 and float(x.max()) <= 1.0 for x in every)
    clipped = target.clamp(0, 1)
    if optimizer in LBFGS:  # L-BFGS with bounds solves a separable quadratic (nearly) exactly
        torch.testing.assert_close(result.image, clipped, atol=1e-4, rtol=0)
    else:  # projected Adam: exact on the bounds, within its step size inside
        assert torch.equal(result.image[..., :4, :], torch.ones(1, 3, 4, 8))
        assert torch.equal(result.image[..., 4:, :4], torch.zeros(1, 3, 4, 4))
        torch.testing.assert_close(result.image, clipped, atol=0.05, rtol=0)
    # The optimum of the constrained problem: the distance from the box to the target.
    assert result.best_total == pytest.approx(float((clipped - target).pow(2).sum()), rel=0.02)


# --- callbacks and StepInfo ----------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_step_info(optimizer: str) -> None:
    objective, init = _toy()
    seen: list[StepInfo] = []
    result = optimize(objective, init, steps=6, optimizer=optimizer, callbacks=[seen.append])
    assert [info.step for info in seen] == [1, 2, 3, 4, 5, 6]
    # The returned history is what the callbacks saw, less the images (memory).
    assert [replace(info, image=None) for info in seen] == result.history
    assert all(h.image is None for h in result.history)
    for info in seen:
        assert set(info.losses) == {"features", "pixels"}
        assert info.total == pytest.approx(sum(info.losses.values()), rel=1e-6)
        assert info.image.shape == init.shape and not info.image.requires_grad
        assert float(info.image.min()) >= 0 and float(info.image.max()) <= 1
    elapsed = [info.elapsed for info in seen]
    assert all(0 < a <= b for a, b in pairwise(elapsed))
    assert elapsed[-1] > elapsed[0]
    evals = [info.evaluations for info in seen]
    assert all(a < b for a, b in pairwise(evals))  # every step evaluates at least once
    assert all(e >= info.step for e, info in zip(evals, seen))
    if optimizer == "adam":  # one evaluation per step, plus one of the final update
        assert evals == [1, 2, 3, 4, 5, 6]
        assert result.evaluations == 7
    else:  # L-BFGS evaluates the start, then at least once per iteration
        assert result.evaluations == evals[-1]
    assert result.losses("features") == [info.losses["features"] for info in seen]
    assert result.losses() == [info.total for info in seen]
    assert result.seconds >= elapsed[-1]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_callback_true_stops_early(optimizer: str) -> None:
    objective, init = _toy()
    flag = StopFlag()
    calls: list[int] = []
    callbacks = [Every(3, lambda info: flag.set()), flag, lambda info: calls.append(info.step)]
    result = optimize(objective, init, steps=10, optimizer=optimizer, callbacks=callbacks)
    assert result.stopped == "callback"
    assert result.steps == 3
    assert calls == [1, 2, 3]  # every callback still sees the step that asked to stop


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_returns_best_image_not_last(optimizer: str) -> None:
    """After the 4th evaluation the objective jumps up by a constant: the best image is an early one."""
    objective, init = _toy()
    count = {"n": 0}

    def worsening(x: Tensor) -> dict[str, Tensor]:
        count["n"] += 1
        terms = objective(x)
        return {**terms, "penalty": x.new_tensor(1e4 if count["n"] > 4 else 0.0)}

    rec = Recorder(worsening)
    seen: list[StepInfo] = []
    result = optimize(rec, init, steps=8, optimizer=optimizer,
                      callbacks=[seen.append, lambda info: info.step >= 6])
    assert len(rec.totals) > 4
    best_total, best_image = rec.best()
    assert rec.totals.index(best_total) < 4
    assert result.best_total == best_total
    assert torch.equal(result.image, best_image)
    assert rec.totals[-1] > best_total
    if optimizer == "adam":
        # An L-BFGS line search rejects every worse trial point and stops, so its last step is
        # its best; Adam keeps going, and its last image is not the best.
        assert result.stopped == "callback" and result.steps == 6
        assert not torch.equal(result.image, rec.images[-1])
        assert not torch.equal(result.image, seen[-1].image)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_keyboard_interrupt_in_objective_returns_best_so_far(optimizer: str) -> None:
    objective, init = _toy()

    # After 8 evaluations: past the first step of every optimiser (our L-BFGS's first line
    # search, from the projected gradient step, may backtrack a few times).
    def interrupted_after_8(x: Tensor) -> dict[str, Tensor]:
        if len(rec.totals) == 8:
            raise KeyboardInterrupt
        return objective(x)

    rec = Recorder(interrupted_after_8)
    result = optimize(rec, init, steps=20, optimizer=optimizer)
    assert result.stopped == "interrupted"
    assert result.evaluations == 8
    assert 1 <= result.steps <= 8
    best_total, best_image = rec.best()
    assert result.best_total == best_total
    assert torch.equal(result.image, best_image)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_keyboard_interrupt_in_callback(optimizer: str) -> None:
    objective, init = _toy()

    def ctrl_c_at_step_2(info: StepInfo) -> None:
        if info.step == 2:
            raise KeyboardInterrupt

    rec = Recorder(objective)
    result = optimize(rec, init, steps=10, optimizer=optimizer, callbacks=[ctrl_c_at_step_2])
    assert result.stopped == "interrupted"
    assert result.steps == 2
    assert torch.equal(result.image, rec.best()[1])


def test_keyboard_interrupt_before_first_evaluation_returns_clamped_init() -> None:
    def at_once(x: Tensor) -> dict[str, Tensor]:
        raise KeyboardInterrupt

    init = torch.full((1, 3, 8, 8), 1.5)
    result = optimize(at_once, init, steps=5)
    assert result.stopped == "interrupted"
    assert result.steps == 0 and result.evaluations == 0
    assert math.isinf(result.best_total)
    assert torch.equal(result.image, torch.ones_like(init))


# --- exceptions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_raises(optimizer: str, bad: float) -> None:
    target = rand(1, 3, 8, 8)
    count = {"n": 0}

    def blows_up(x: Tensor) -> dict[str, Tensor]:
        count["n"] += 1
        loss = (x - target).pow(2).sum()
        return {"mse": loss + bad if count["n"] > 2 else loss}

    with pytest.raises(FloatingPointError, match=f"the loss became {bad} after 2 evaluations"):
        optimize(blows_up, torch.full_like(target, 0.5), steps=10, optimizer=optimizer)


@pytest.mark.parametrize("steps", [0, -1])
def test_steps_below_one_raise(steps: int) -> None:
    with pytest.raises(ValueError, match=f"steps must be at least 1, got {steps}"):
        optimize(mse_to(torch.zeros(1, 3, 4, 4)), torch.zeros(1, 3, 4, 4), steps=steps)


def test_unknown_optimizer_raises() -> None:
    with pytest.raises(ValueError, match=f"unknown optimizer 'sgd'; expected one of {', '.join(OPTIMIZERS)}"):
        optimize(mse_to(torch.zeros(1, 3, 4, 4)), torch.zeros(1, 3, 4, 4), steps=1, optimizer="sgd")


def test_empty_objective_raises() -> None:
    with pytest.raises(ValueError, match="no loss terms"):
        optimize(lambda x: {}, torch.zeros(1, 3, 4, 4), steps=1)


# --- determinism ---------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_deterministic(optimizer: str) -> None:
    target = rand(1, 3, 16, 16, seed=5)
    init = rand(1, 3, 16, 16, seed=6)
    runs = [optimize(conv_objective(target), init, steps=5, optimizer=optimizer) for _ in range(2)]
    assert torch.equal(runs[0].image, runs[1].image)
    assert runs[0].losses() == runs[1].losses()
    assert runs[0].evaluations == runs[1].evaluations


# --- imports -------------------------------------------------------------------------------------


def test_default_run_does_not_import_scipy_optimize(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default L-BFGS runs in PyTorch; SciPy is imported only for ``optimizer="lbfgs-scipy"``."""
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # from now on, importing it fails
    target = rand(1, 3, 4, 4)
    result = optimize(mse_to(target), torch.zeros_like(target), steps=3)
    assert result.best_total < float(mse_to(target)(torch.zeros_like(target))["mse"])
    with pytest.raises(ImportError, match="scipy.optimize"):
        optimize(mse_to(target), torch.zeros_like(target), steps=3, optimizer="lbfgs-scipy")
