"""Tests for nst_utils.lbfgsb: L-BFGS in a box, on analytic problems and against SciPy's L-BFGS-B."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from helpers import rand
from torch import Tensor

from nst_utils.config import PAPER
from nst_utils.features import VGG19Features
from nst_utils.images import load_image
from nst_utils.lbfgsb import CurvaturePairs, minimize_in_box
from nst_utils.objective import MatchingObjective, content_targets, initial_image, style_targets
from nst_utils.optimize import optimize

Evaluate = Callable[[Tensor], tuple[Tensor, Tensor]]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def kkt_quadratic(n: int = 20, seed: int = 0) -> tuple[Evaluate, Tensor]:
    """``f(x) = 1/2 (x - x*)'A(x - x*) + c'x`` with A positive definite and ``c`` chosen so that
    ``x*`` satisfies the KKT conditions in ``[0, 1]^n``: its first quarter sits on 0 with the
    gradient pushing down, its second on 1 pushing up, the rest inside with zero gradient.
    Strictly convex, so ``x*`` is the unique minimiser, known exactly."""
    gen = _generator(seed)
    q = torch.randn(n, n, generator=gen, dtype=torch.float64)
    a = q @ q.T / n + 0.1 * torch.eye(n, dtype=torch.float64)
    x_star = 0.1 + 0.8 * torch.rand(n, generator=gen, dtype=torch.float64)
    c = torch.zeros(n, dtype=torch.float64)
    k = n // 4
    x_star[:k], c[:k] = 0.0, 0.1 + torch.rand(k, generator=gen, dtype=torch.float64)
    x_star[k:2 * k], c[k:2 * k] = 1.0, -0.1 - torch.rand(k, generator=gen, dtype=torch.float64)

    def evaluate(x: Tensor) -> tuple[Tensor, Tensor]:
        r = x - x_star
        return 0.5 * r @ a @ r + c @ x, a @ r + c

    return evaluate, x_star


def rosenbrock_pairs(x: Tensor) -> tuple[Tensor, Tensor]:
    """Independent 2-D Rosenbrock valleys ``100 (b - a^2)^2 + (1 - a)^2`` on pairs ``(a, b)``.

    In the box ``[-1, 0.5]`` the minimiser of each pair is ``(0.5, 0.25)``: ``(1 - a)^2 >= 1/4``
    with equality only at ``a = 0.5``, where ``b = a^2`` zeroes the valley term; ``a`` sits on
    its upper bound with the gradient pushing outward (``-1``), ``b`` is free."""
    a, b = x[0::2], x[1::2]
    valley = b - a * a
    grad = torch.empty_like(x)
    grad[0::2] = -400 * a * valley - 2 * (1 - a)
    grad[1::2] = 200 * valley
    return (100 * valley**2 + (1 - a) ** 2).sum(), grad


def conv_feature_loss(shape: tuple[int, ...] = (1, 3, 12, 12)) -> Evaluate:
    """A non-convex one-layer 'content loss' (random conv + ReLU), its gradient by autograd."""
    weight = torch.randn(8, shape[1], 3, 3, generator=_generator(1)) * 0.5
    with torch.no_grad():
        target = F.relu(F.conv2d(rand(*shape, seed=2), weight, padding=1))

    def evaluate(x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.detach().requires_grad_(True)
        loss = 0.5 * (F.relu(F.conv2d(x, weight, padding=1)) - target).pow(2).sum()
        (grad,) = torch.autograd.grad(loss, x)
        return loss.detach(), grad

    return evaluate


class Recording:
    """Wraps an ``evaluate``; keeps a copy of every point it was asked about."""

    def __init__(self, evaluate: Evaluate) -> None:
        self.evaluate, self.points = evaluate, []

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self.points.append(x.detach().clone())
        return self.evaluate(x)


# --- analytic values ------------------------------------------------------------------------------


def test_quadratic_with_active_bounds_reaches_kkt_point() -> None:
    evaluate, x_star = kkt_quadratic()
    x = minimize_in_box(evaluate, torch.full_like(x_star, 0.5), steps=100)
    torch.testing.assert_close(x, x_star, atol=1e-7, rtol=0)
    # The active bounds are hit exactly: the projection puts those variables on them.
    assert torch.equal(x[:5], torch.zeros_like(x[:5])) and torch.equal(x[5:10], torch.ones_like(x[5:10]))


def test_rosenbrock_valleys_in_a_box() -> None:
    x0 = torch.tensor([-0.8, 0.4] * 5, dtype=torch.float64) + torch.linspace(0, 0.05, 10, dtype=torch.float64)
    x = minimize_in_box(rosenbrock_pairs, x0, steps=200, lower=-1.0, upper=0.5)
    torch.testing.assert_close(x, torch.tensor([0.5, 0.25] * 5, dtype=torch.float64), atol=1e-6, rtol=0)


def test_two_loop_recursion_equals_dense_bfgs_inverse() -> None:
    """Oracle: ``H q`` from the two-loop recursion equals the dense BFGS inverse update
    ``H <- (I - rho s y')H(I - rho y s') + rho s s'`` from ``H0 = gamma I`` (Nocedal & Wright
    eq. 6.17) over the last ``m`` pairs; on a subset of free variables, the same update over
    the pairs restricted to them."""
    n, gen = 12, _generator(3)
    b = torch.randn(n, n, generator=gen, dtype=torch.float64)
    b = b @ b.T + n * torch.eye(n, dtype=torch.float64)  # a Hessian: the pairs are (s, B s)
    steps = [torch.randn(n, generator=gen, dtype=torch.float64) for _ in range(6)]
    pairs = CurvaturePairs(m=4)
    assert all(pairs.add(s, b @ s) for s in steps)
    assert len(pairs) == 4  # the oldest two were dropped
    gamma = torch.dot(steps[-1], b @ steps[-1]) / (b @ steps[-1]).pow(2).sum()
    everything, free = torch.ones(n, dtype=torch.float64), (torch.arange(n) % 3 != 0).to(torch.float64)
    for mask in (everything, free):
        h = gamma * torch.eye(n, dtype=torch.float64)
        for s in steps[2:]:
            s, y = s * mask, (b @ s) * mask
            assert torch.dot(s, y) > 0  # else the recursion skips the pair: not what this tests
            left = torch.eye(n, dtype=torch.float64) - torch.outer(s, y) / torch.dot(s, y)
            h = left @ h @ left.T + torch.outer(s, s) / torch.dot(s, y)
        q = torch.randn(n, generator=gen, dtype=torch.float64) * mask
        torch.testing.assert_close(pairs.times(q, mask), h @ q)


def test_pairs_without_positive_curvature_are_skipped() -> None:
    pairs = CurvaturePairs(m=3)
    s = torch.tensor([1.0, 0.0])
    assert not pairs.add(s, torch.tensor([-1.0, 0.0]))  # s'y < 0: H would not be positive definite
    assert not pairs.add(s, torch.tensor([0.0, 1.0]))  # s'y = 0
    assert len(pairs) == 0 and pairs.gamma == 1.0
    assert pairs.add(s, torch.tensor([2.0, 0.0]))
    assert len(pairs) == 1 and float(pairs.gamma) == 0.5


# --- the box ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("problem", ["quadratic", "rosenbrock", "features"])
def test_never_evaluates_outside_the_box(problem: str) -> None:
    lower, upper = (-1.0, 0.5) if problem == "rosenbrock" else (0.0, 1.0)
    if problem == "quadratic":
        evaluate, x_star = kkt_quadratic()
        x0 = torch.linspace(-0.5, 1.5, x_star.numel(), dtype=x_star.dtype)  # starts partly outside
    elif problem == "rosenbrock":
        evaluate, x0 = rosenbrock_pairs, torch.tensor([-2.0, 0.4, 0.9, -0.3] * 3, dtype=torch.float64)
    else:
        evaluate, x0 = conv_feature_loss(), rand(1, 3, 12, 12, seed=4) * 1.4 - 0.2
    recording, reported = Recording(evaluate), []
    x = minimize_in_box(recording, x0, steps=40, lower=lower, upper=upper, on_step=reported.append)
    assert len(recording.points) > len(reported) >= 10
    for point in [*recording.points, *reported, x]:
        assert point.shape == x0.shape and point.dtype == x0.dtype
        assert float(point.min()) >= lower and float(point.max()) <= upper


def test_works_in_the_iterates_dtype_and_shape() -> None:
    evaluate = conv_feature_loss()
    x0 = torch.full((1, 3, 12, 12), 0.5)
    seen: list[torch.dtype] = []

    def float32_only(x: Tensor) -> tuple[Tensor, Tensor]:
        seen.append(x.dtype)
        return evaluate(x)

    x = minimize_in_box(float32_only, x0, steps=5)
    assert x.shape == x0.shape and x.dtype == torch.float32 and set(seen) == {torch.float32}
    assert float(evaluate(x)[0]) < float(evaluate(x0)[0])


# --- stopping ---------------------------------------------------------------------------------------


def test_on_step_true_stops_after_that_step() -> None:
    calls: list[Tensor] = []

    def third_stops(x: Tensor) -> bool:
        calls.append(x.clone())
        return len(calls) == 3

    x = minimize_in_box(conv_feature_loss(), torch.full((1, 3, 12, 12), 0.5), steps=20, on_step=third_stops)
    assert len(calls) == 3
    assert torch.equal(x, calls[-1])


def test_stationary_start_returns_it_after_one_evaluation() -> None:
    evaluate, x_star = kkt_quadratic()
    recording, reported = Recording(evaluate), []
    x = minimize_in_box(recording, x_star, steps=10, on_step=reported.append)
    assert torch.equal(x, x_star)
    assert len(recording.points) == 1 and reported == []


def test_ends_cleanly_when_no_step_decreases_the_loss() -> None:
    """A gradient of the wrong sign: every trial goes uphill, so the search fails, the history
    is dropped, the retry fails too, and the (clamped) start comes back, without an error."""
    evaluate, _ = kkt_quadratic()

    def wrong_sign(x: Tensor) -> tuple[Tensor, Tensor]:
        loss, grad = evaluate(x)
        return loss, -grad

    recording = Recording(wrong_sign)
    x0 = torch.linspace(-0.2, 1.2, 20, dtype=torch.float64)
    x = minimize_in_box(recording, x0, steps=10, on_step=lambda x: pytest.fail("no step was taken"))
    assert torch.equal(x, x0.clamp(0, 1))
    assert 1 < len(recording.points) <= 1 + 20


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_loss_raises(bad: float) -> None:
    evaluate, count = conv_feature_loss(), []

    def blows_up_third(x: Tensor) -> tuple[Tensor, Tensor]:
        count.append(1)
        loss, grad = evaluate(x)
        return (loss + bad if len(count) == 3 else loss), grad

    with pytest.raises(FloatingPointError, match=f"the loss became {bad}"):
        minimize_in_box(blows_up_third, torch.full((1, 3, 12, 12), 0.5), steps=10)


@pytest.mark.parametrize("error", [FloatingPointError, KeyboardInterrupt])
def test_exceptions_from_evaluate_propagate(error: type[BaseException]) -> None:
    evaluate, count = conv_feature_loss(), []

    def fails_third(x: Tensor) -> tuple[Tensor, Tensor]:
        count.append(1)
        if len(count) == 3:
            raise error("the loss became nan after 2 evaluations")
        return evaluate(x)

    with pytest.raises(error, match="after 2 evaluations"):
        minimize_in_box(fails_third, torch.full((1, 3, 12, 12), 0.5), steps=10)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"steps": 0}, "steps and history must be at least 1, got 0 and 20"),
        ({"steps": 5, "history": 0}, "steps and history must be at least 1, got 5 and 0"),
        ({"steps": 5, "lower": 1.0, "upper": 1.0}, "the box is empty: lower 1.0 must be below upper 1.0"),
    ],
)
def test_bad_arguments_raise(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        minimize_in_box(conv_feature_loss(), torch.zeros(1, 3, 12, 12), **options)


# --- determinism ------------------------------------------------------------------------------------


def test_deterministic_on_the_cpu() -> None:
    runs = []
    for _ in range(2):
        recording = Recording(conv_feature_loss())
        x = minimize_in_box(recording, rand(1, 3, 12, 12, seed=5), steps=15)
        runs.append((x, recording.points))
    (x1, points1), (x2, points2) = runs
    assert torch.equal(x1, x2)
    assert len(points1) == len(points2) and all(torch.equal(a, b) for a, b in zip(points1, points2))


# --- the oracle: SciPy's L-BFGS-B on the package's own objectives -------------------------------------

#: Objective evaluations each optimiser gets per run.
ORACLE_EVALUATIONS = 30
#: How much higher than SciPy's our loss after ORACLE_EVALUATIONS may be (geometric means over
#: the same three starts). Not a numerical tolerance: from white noise these objectives are
#: non-convex and the descent is chaotic, so a start nudged by 1e-6 (far below a grey level)
#: ends elsewhere. Measured at 64 px (paper layers, Caffe weights, 30 evaluations): between
#: nudged starts SciPy's own loss varies by up to 16 % (max/min), ours by up to 78 % on the
#: texture-dominated problems (its line search branches differently in the first steps), which
#: leaves the geometric mean of three runs uncertain by about 20 %. The ratios of the means,
#: ours/SciPy, were 0.84 to 1.02 over the five problems; 0.5 is about three times that
#: uncertainty. So this catches an optimiser that needs clearly more evaluations than SciPy's
#: (at this stage the loss falls by about 5 % per evaluation: 0.5 is some 8 evaluations of 30),
#: not a difference of a few percent.
ORACLE_TOL = 0.5
ORACLE_PROBLEMS = [
    pytest.param("content", marks=pytest.mark.slow),
    pytest.param("texture", marks=pytest.mark.slow),
    pytest.param(1e-5, marks=pytest.mark.slow),
    1e-3,  # the paper's Fig. 3 B ratio stays in the quick suite
    pytest.param(1e-1, marks=pytest.mark.slow),
]


def matching_objective(problem: str | float, extractor: VGG19Features, photo: Tensor) -> MatchingObjective:
    """Content reconstruction (relu4_2), texture synthesis (paper style layers, the mosaic) or
    style transfer of the photo at ``alpha/beta = problem``."""
    content = content_targets(extractor, photo, PAPER.content_layers)
    style = style_targets(extractor, load_image("mosaic", tuple(photo.shape[-2:])), PAPER.style_layers)
    if problem == "content":
        return MatchingObjective(extractor, content, {})
    if problem == "texture":
        return MatchingObjective(extractor, {}, style)
    return MatchingObjective(extractor, content, style, content_weight=float(problem))


def oracle_starts(photo: Tensor) -> list[Tensor]:
    """The paper's grey-noise start, and the same nudged by 1e-6 noise (two seeds)."""
    start = initial_image("noise", content=photo, seed=0)
    nudges = [torch.randn(start.shape, generator=_generator(seed)) * 1e-6 for seed in (1, 2)]
    return [start, *[(start + nudge).clamp(0, 1) for nudge in nudges]]


def best_after(objective: MatchingObjective, start: Tensor, optimizer: str, evaluations: int) -> float:
    """The lowest total loss among a run's first ``evaluations`` evaluations."""
    totals: list[float] = []

    def recorded(x: Tensor) -> dict[str, Tensor]:
        terms = objective(x)
        totals.append(float(sum(t.detach() for t in terms.values())))
        return terms

    # Every step evaluates at least once, so `evaluations` steps are enough.
    optimize(recorded, start, steps=evaluations, optimizer=optimizer,
             callbacks=[lambda info: info.evaluations >= evaluations])
    return min(totals[:evaluations])


def _geometric_mean(values: list[float]) -> float:
    return float(torch.tensor(values, dtype=torch.float64).log().mean().exp())


@pytest.mark.parametrize("problem", ORACLE_PROBLEMS)
def test_loss_after_n_evaluations_matches_scipy(
    problem: str | float, paper_extractor: VGG19Features, photo: Tensor
) -> None:
    objective = matching_objective(problem, paper_extractor, photo)
    starts = oracle_starts(photo)
    ours = [best_after(objective, x0, "lbfgs", ORACLE_EVALUATIONS) for x0 in starts]
    scipy = [best_after(objective, x0, "lbfgs-scipy", ORACLE_EVALUATIONS) for x0 in starts]
    initial = float(sum(objective(starts[0]).values()))
    assert max(ours) < 0.5 * initial  # both made real progress, so the ratio below means something
    assert _geometric_mean(ours) <= _geometric_mean(scipy) * (1 + ORACLE_TOL), (ours, scipy)
