"""One small loop that optimises an image for any objective.

An *objective* is a callable ``image -> {term name: weighted loss tensor}``; the loop minimises
the sum of the terms over images in the box ``[0, 1]``. Three optimisers:

``"lbfgs"`` (the paper's choice)
    L-BFGS with the box constraint built in (:func:`nst_utils.lbfgsb.minimize_in_box`, in
    PyTorch on the image's own device), driven by a *closure* that returns the loss and its
    gradient. Projecting a plain L-BFGS iterate back into the box between steps (what most
    implementations do with ``torch.optim.LBFGS``) silently invalidates its curvature pairs;
    a two-metric projection keeps them consistent: pixels pressed against a bound are held
    there, the quasi-Newton step moves the others, and a strong-Wolfe line search along the
    projection arc makes it independent of the loss scale, so every alpha/beta converges
    without tuning a learning rate. One step is one L-BFGS iteration; most take one objective
    evaluation, the first few more while the line search finds the scale.
``"lbfgs-scipy"``
    The same problem handed to SciPy's L-BFGS-B (Byrd, Lu, Nocedal & Zhu 1995, through
    :func:`scipy.optimize.minimize`): the reference implementation that ``"lbfgs"`` is tested
    against. Each evaluation copies the image to the host as float64 and back, and the update
    runs on the CPU. SciPy is imported only when this optimiser is chosen.
``"adam"``
    Adam on the pixels with projection onto the box after every update (projected gradient
    is the correct box handling for a first-order method). One step is one evaluation.

The loop never prints: each step it calls ``callbacks`` with a :class:`StepInfo`. A callback
that returns ``True`` stops the run, or a string that says why (it becomes the result's
``stopped``); Ctrl-C stops it too. A :class:`Plateau` ends it once the loss has stopped improving.
Either way the best image seen so far is returned.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from .config import OPTIMIZERS, check_choice
from .lbfgsb import minimize_in_box

Objective = Callable[[Tensor], Mapping[str, Tensor]]


@dataclass(frozen=True)
class StepInfo:
    """What a callback sees after each step. ``losses`` are the weighted terms; ``total`` their sum.

    ``image`` is the current iterate, given to callbacks only: the history that
    :func:`optimize` returns keeps ``image=None`` (500 full-size images would be gigabytes).
    """

    step: int
    losses: dict[str, float]
    total: float
    elapsed: float
    evaluations: int
    image: Tensor | None = field(default=None, repr=False)
    #: Each layer's weighted loss at the step's last evaluation (``alpha L_content`` per content
    #: layer, ``beta w_l E_l`` per style layer), when the objective reports them (the run loop's do).
    layer_losses: dict[str, float] = field(default_factory=dict, repr=False)
    #: Within a run (:func:`nst_utils.loop.run`): the coarse-to-fine level (0 = the coarsest) and
    #: the segment, one uninterrupted call of :func:`optimize` (a new one after each restart).
    level: int = 0
    segment: int = 0


#: A callback may return nothing or False (go on), True (stop), or a string: stop, and why.
Callback = Callable[[StepInfo], bool | str | None]


@dataclass(frozen=True)
class Plateau:
    """The stopping rule: the loss has stopped improving.

    After step ``k >= window``, stop when the best total loss improved by less than ``tol``
    (relative) over the last ``window`` steps: ``best[k - window] - best[k] < tol * best[k - window]``.
    ``tol = 0`` never stops.
    """

    tol: float
    window: int

    def reached(self, best: Sequence[float]) -> bool:
        """Whether the rule fires for the best-so-far totals ``best`` (one per step)."""
        if not self.tol or len(best) <= self.window:
            return False
        before = best[-1 - self.window]
        return before - best[-1] < self.tol * abs(before)


@dataclass
class OptimizeResult:
    """``image`` is the best image seen (lowest total loss), on the device it was optimised on."""

    image: Tensor
    history: list[StepInfo]
    best_total: float
    #: Why it ended before its steps: None (it did not), "converged", "callback" (or the string
    #: a callback returned), "interrupted".
    stopped: str | None = None
    evaluations: int = 0
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.history)

    def losses(self, term: str | None = None) -> list[float]:
        """The loss history of one term (or the total) per step."""
        return [h.total if term is None else h.losses[term] for h in self.history]


class _Tracker:
    """Shared bookkeeping: evaluations, the best image, the per-step reports."""

    def __init__(self, objective: Objective, callbacks: Iterable[Callback]) -> None:
        self.objective, self.callbacks = objective, list(callbacks)
        self.start = time.perf_counter()
        self.evaluations = 0
        self.best_total = math.inf
        self.best_image: Tensor | None = None
        self.last_terms: dict[str, float] = {}
        self.last_total = math.inf
        self.history: list[StepInfo] = []
        self.best_totals: list[float] = []
        self.stopped: str | None = None

    def evaluate(self, image: Tensor) -> Tensor:
        """Total loss at ``image`` (which requires grad); records terms and the best image."""
        terms = self.objective(image)
        if not terms:
            raise ValueError("the objective returned no loss terms")
        total = sum(terms.values())
        assert isinstance(total, Tensor)
        value = float(total.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"the loss became {value} after {self.evaluations} evaluations")
        self.evaluations += 1
        self.last_terms = {name: float(t.detach()) for name, t in terms.items()}
        self.last_total = value
        if value < self.best_total:
            self.best_total, self.best_image = value, image.detach().clone()
        return total

    def report(self, image: Tensor, plateau: Plateau | None = None) -> bool:
        """Call the callbacks for the step just taken; True when the run should end, with the
        reason in :attr:`stopped` (a callback's, or ``"converged"`` when ``plateau`` is reached)."""
        info = StepInfo(
            step=len(self.history) + 1,
            losses=dict(self.last_terms),
            total=self.last_total,
            elapsed=time.perf_counter() - self.start,
            evaluations=self.evaluations,
            image=image.detach(),
        )
        self.history.append(replace(info, image=None))
        self.best_totals.append(self.best_total)
        for callback in self.callbacks:  # every callback sees every step, even after one asks to stop
            asked = callback(info)
            if asked and self.stopped is None:
                self.stopped = asked if isinstance(asked, str) else "callback"
        if self.stopped is None and plateau is not None and plateau.reached(self.best_totals):
            self.stopped = "converged"
        return self.stopped is not None


def _run_adam(tracker: _Tracker, init: Tensor, steps: int, lr: float, plateau: Plateau | None) -> None:
    x = init.detach().clone().clamp_(0, 1).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        tracker.evaluate(x).backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)  # projection onto the box
        if tracker.report(x, plateau):
            break
    # The last update is not yet evaluated: evaluate it so "best" covers the final image.
    with torch.enable_grad():
        tracker.evaluate(x.detach().requires_grad_(True))


def _run_torch_lbfgs(tracker: _Tracker, init: Tensor, steps: int, history: int,
                     plateau: Plateau | None) -> None:
    def evaluate(x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.detach().requires_grad_(True)
        total = tracker.evaluate(x)
        (grad,) = torch.autograd.grad(total, x)
        return total.detach(), grad

    minimize_in_box(evaluate, init.detach().clamp(0, 1), steps=steps, history=history,
                    on_step=lambda x: tracker.report(x, plateau))


def _run_scipy_lbfgs(tracker: _Tracker, init: Tensor, steps: int, history: int,
                     plateau: Plateau | None) -> None:
    from scipy.optimize import Bounds, minimize  # only here: a default run never imports scipy.optimize

    shape, device, dtype = init.shape, init.device, init.dtype

    def closure(z: np.ndarray) -> tuple[float, np.ndarray]:
        x = torch.from_numpy(z).view(shape).to(device=device, dtype=dtype).requires_grad_(True)
        total = tracker.evaluate(x)
        (grad,) = torch.autograd.grad(total, x)
        return tracker.last_total, grad.detach().to(torch.float64).cpu().numpy().ravel()

    def on_iteration(intermediate_result) -> None:
        x = torch.from_numpy(intermediate_result.x).view(shape).to(device=device, dtype=dtype)
        if tracker.report(x, plateau):
            raise StopIteration

    x0 = init.detach().to(torch.float64).clamp(0, 1).cpu().numpy().ravel()
    minimize(
        closure, x0, jac=True, method="L-BFGS-B", bounds=Bounds(0.0, 1.0), callback=on_iteration,
        # ftol = gtol = 0: run the requested number of steps unless the line search fails.
        options={"maxiter": steps, "maxfun": steps * 20, "maxcor": history, "ftol": 0.0, "gtol": 0.0},
    )


def optimize(
    objective: Objective,
    init: Tensor,
    *,
    steps: int,
    optimizer: str = "lbfgs",
    lbfgs_history: int = 20,
    adam_lr: float = 0.02,
    plateau: Plateau | None = None,
    callbacks: Iterable[Callback] = (),
) -> OptimizeResult:
    """Minimise ``sum(objective(x).values())`` over images ``x`` in ``[0, 1]`` from ``init``.

    Returns the best image seen and the per-step history, after ``steps`` steps or sooner:
    ``stopped`` says why, ``"converged"`` when ``plateau`` fired, ``"callback"`` (or the string
    a callback returned) when a callback asked, ``"interrupted"`` on Ctrl-C.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    check_choice(optimizer, OPTIMIZERS, "optimizer")
    tracker = _Tracker(objective, callbacks)
    try:
        if optimizer == "adam":
            _run_adam(tracker, init, steps, adam_lr, plateau)
        elif optimizer == "lbfgs-scipy":
            _run_scipy_lbfgs(tracker, init, steps, lbfgs_history, plateau)
        else:
            _run_torch_lbfgs(tracker, init, steps, lbfgs_history, plateau)
    except KeyboardInterrupt:
        tracker.stopped = "interrupted"
    if tracker.best_image is None:  # interrupted before the first evaluation finished
        tracker.best_image, tracker.best_total = init.detach().clamp(0, 1).clone(), math.inf
    return OptimizeResult(
        image=tracker.best_image,
        history=tracker.history,
        best_total=tracker.best_total,
        stopped=tracker.stopped,
        evaluations=tracker.evaluations,
        seconds=time.perf_counter() - tracker.start,
    )
