"""L-BFGS in a box ``[lower, upper]``, in PyTorch, on the iterate's own device and dtype.

The method is Bertsekas's *two-metric projection* (Bertsekas 1982) with an L-BFGS metric, the
variant Schmidt, Kim & Sra (2012) describe for machine learning (Schmidt's ``minConf_TMP``):

1. **Held and free variables.** A variable is *held* when it lies within ``ACTIVE_BAND`` of a
   bound and its gradient pushes it outward; the others are *free*.
2. **Direction.** Free variables get the L-BFGS step ``-H g``: the two-loop recursion (Nocedal
   1980; Liu & Nocedal 1989) over the last ``m`` curvature pairs restricted to the free
   variables, so that ``H`` approximates the inverse Hessian of the free subspace, where the
   step is taken. Held variables get a plain gradient step ``-gamma g`` (``gamma = s'y / y'y``,
   the usual initial scaling), against their bound, where the projection keeps them. A metric
   that is diagonal on the held set is what makes the projected step a descent step (Bertsekas
   1982); a full quasi-Newton step projected afterwards need not be, and plain L-BFGS clamped
   between steps stores curvature pairs for steps it did not take.
3. **Line search along the projection arc** ``phi(t) = f(P(x + t d))``, so the objective is
   never evaluated outside the box. ``phi`` is continuous and piecewise smooth, and its slope
   is known exactly: ``g(P(x + t d))'d`` over the variables not clipped at ``t``. So PyTorch's
   strong-Wolfe search (``torch.optim.lbfgs._strong_wolfe``, the one ``torch.optim.LBFGS``
   uses: bracketing, then a cubic-interpolation zoom, Nocedal & Wright Algorithms 3.5 and 3.6)
   runs on ``phi`` as it is, from ``t = 1`` (from a unit distance while no curvature pair has
   been kept, as on a non-convex start, where ``d`` is the bare gradient). The Wolfe curvature
   condition is what normally keeps ``s'y > 0`` and lets a step grow where the loss keeps falling
   steeply. The very first step has no scale at all: its trial is the projected gradient step
   ``P(x - g)``, which the box keeps bounded, and Armijo backtracking may only shorten it
   (L-BFGS-B starts the same way in a box).
4. **Pairs and failure.** The pair is the step taken, ``s = x_new - x``, ``y = g_new - g``,
   skipped when ``s'y`` is not safely positive. When no trial decreases the loss the history
   is dropped and the iteration retried along the gradient, as L-BFGS-B does; when that
   fails too, the current iterate is returned.

Why this and not L-BFGS-B itself (Byrd, Lu, Nocedal & Zhu 1995, what SciPy runs): its
generalised Cauchy point walks the breakpoints of the projected-gradient path in order, a
sequential loop over up to ``n`` sorted breakpoints, followed by a subspace minimisation in
the compact representation; both are long to read and serial on a GPU. Here every operation is
elementwise or a dot product, so the whole update stays on the device, with the same
ingredients (curvature pairs, a Wolfe search, bound-held variables). Why not a library
optimiser: ``torch.optim.LBFGS`` has no bounds, and a bounded port must restrict its direction
to the free variables, or each step stops at the first bound any variable meets (the README's
"L-BFGS with a box" says which port we checked and what it does). Only the line search is
borrowed, from PyTorch; it is a private function, so ``tests/test_lbfgsb.py`` is what notices
if it changes.

Host synchronisations: one ``float(loss)`` per evaluation, the line search's own tests (a few
scalar reads per trial), and per iteration the slope ``phi'(0)`` and the curvature test of the
new pair. The two-loop recursion keeps its dot products as 0-d tensors.

References:
    D. P. Bertsekas, *Projected Newton methods for optimization problems with simple
    constraints*, SIAM J. Control Optim. 20(2), 1982.
    M. Schmidt, D. Kim & S. Sra, *Projected Newton-type methods in machine learning*, in
    Optimization for Machine Learning, MIT Press, 2012.
    J. Nocedal, *Updating quasi-Newton matrices with limited storage*, Math. Comp. 35, 1980;
    D. C. Liu & J. Nocedal, *On the limited memory BFGS method for large scale optimization*,
    Math. Programming 45, 1989.
    J. Nocedal & S. J. Wright, *Numerical Optimization*, 2nd ed., Springer, 2006.
    R. H. Byrd, P. Lu, J. Nocedal & C. Zhu, *A limited memory algorithm for bound constrained
    optimization*, SIAM J. Sci. Comput. 16(5), 1995.

Example:
    >>> import torch
    >>> target = torch.tensor([-0.5, 0.25, 2.0])
    >>> def evaluate(x):
    ...     return (x - target).pow(2).sum(), 2 * (x - target)
    >>> minimize_in_box(evaluate, torch.full((3,), 0.5), steps=10)
    tensor([0.0000, 0.2500, 1.0000])
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import torch
from torch import Tensor
from torch.optim.lbfgs import _strong_wolfe

Evaluate = Callable[[Tensor], tuple[Tensor, Tensor]]

#: Wolfe constants: sufficient decrease c1 and curvature c2 (Nocedal & Wright's usual values).
WOLFE_C1, WOLFE_C2 = 1e-4, 0.9
#: Evaluations per line search at most (SciPy's L-BFGS-B allows 20 too).
MAX_TRIALS = 20
#: Bertsekas's epsilon: how close to a bound (as a fraction of the box's width) a variable
#: pushed outward is held. Positive, so that a variable a hair inside the box cannot cut every
#: step short; small, so that what it holds is practically on the bound.
ACTIVE_BAND = 1e-3


class CurvaturePairs:
    """The last ``m`` pairs ``(s, y)`` and the L-BFGS inverse Hessian ``H`` they define."""

    def __init__(self, m: int) -> None:
        self.s: deque[Tensor] = deque(maxlen=m)
        self.y: deque[Tensor] = deque(maxlen=m)
        self.gamma: Tensor | float = 1.0  # H0 = gamma I, Nocedal & Wright eq. (7.20)

    def __len__(self) -> int:
        return len(self.s)

    def clear(self) -> None:
        self.s.clear()
        self.y.clear()
        self.gamma = 1.0

    def add(self, s: Tensor, y: Tensor) -> bool:
        """Keep the pair unless ``s'y`` is not safely positive (it would make H indefinite)."""
        sy, yy = torch.dot(s, y), torch.dot(y, y)
        if not bool(sy > torch.finfo(s.dtype).eps * yy):
            return False
        self.s.append(s)
        self.y.append(y)
        self.gamma = sy / yy
        return True

    def times(self, q: Tensor, free: Tensor) -> Tensor:
        """``H q`` by the two-loop recursion (Nocedal & Wright, Algorithm 7.4) over the pairs
        restricted to the ``free`` variables (a 0/1 mask); ``q`` must be zero off them."""
        q = q.clone()
        eps = torch.finfo(q.dtype).eps
        alphas, rhos = [], []
        for s, y in zip(reversed(self.s), reversed(self.y)):
            y = y * free  # s needs no mask here: its dot products are with vectors zero off F
            sy = torch.dot(s, y)
            # Restricted, a pair may lose its curvature: rho = 0 then makes it a no-op in both
            # loops, keeping H positive definite without reading sy on the host.
            rho = torch.where(sy > eps * torch.dot(y, y), 1 / sy, torch.zeros_like(sy))
            alpha = rho * torch.dot(s, q)
            q.sub_(alpha * y)
            alphas.append(alpha)
            rhos.append(rho)
        r = q.mul_(self.gamma)
        for s, y, rho, alpha in zip(self.s, self.y, reversed(rhos), reversed(alphas)):
            beta = rho * torch.dot(y, r)  # r is zero off F, so y needs no mask here
            r.add_((alpha - beta) * (s * free))
        return r


def minimize_in_box(
    evaluate: Evaluate,
    x0: Tensor,
    *,
    steps: int,
    history: int = 20,
    lower: float = 0.0,
    upper: float = 1.0,
    on_step: Callable[[Tensor], bool | None] | None = None,
) -> Tensor:
    """Minimise ``f`` over ``lower <= x <= upper`` from ``x0`` (clamped into the box).

    ``evaluate(x)`` returns ``(f(x), grad f(x))``: a 0-d tensor and a tensor shaped like ``x``.
    ``on_step(x)`` is called after each iteration; returning True stops. Returns the last
    iterate: after ``steps`` iterations, a stop, or when the line search cannot decrease ``f``
    (a stationary point, or the limit of the dtype's precision). A non-finite loss raises
    ``FloatingPointError``; exceptions from ``evaluate`` propagate unchanged.
    """
    if steps < 1 or history < 1:
        raise ValueError(f"steps and history must be at least 1, got {steps} and {history}")
    if not lower < upper:
        raise ValueError(f"the box is empty: lower {lower} must be below upper {upper}")
    box = (lower, upper)

    def flat_evaluate(x: Tensor) -> tuple[float, Tensor]:
        loss, grad = evaluate(x.view_as(x0))
        value = float(loss)  # the one host synchronisation per evaluation
        if not math.isfinite(value):  # the line search would interpolate with it: stop instead
            raise FloatingPointError(f"the loss became {value}")
        return value, grad.detach().reshape(-1)

    x = x0.detach().reshape(-1).clamp(lower, upper)
    f, g = flat_evaluate(x)
    pairs = CurvaturePairs(history)
    for step in range(steps):
        found = _iteration(flat_evaluate, x, f, g, pairs, box, first=step == 0)
        if found is None and len(pairs):
            pairs.clear()  # L-BFGS-B's restart: a stale metric can point nowhere useful
            found = _iteration(flat_evaluate, x, f, g, pairs, box, first=False)
        if found is None:
            break
        x_new, f, g_new = found
        pairs.add(x_new - x, g_new - g)
        x, g = x_new, g_new
        if on_step is not None and on_step(x.view_as(x0)):
            break
    return x.view_as(x0)


def _iteration(
    evaluate: Callable[[Tensor], tuple[float, Tensor]],
    x: Tensor,
    f: float,
    g: Tensor,
    pairs: CurvaturePairs,
    box: tuple[float, float],
    first: bool,
) -> tuple[Tensor, float, Tensor] | None:
    """One step along the projection arc of the descent direction; None when no trial decreases ``f``."""
    d = descent_direction(x, g, pairs, box)
    lower, upper = box
    stuck = ((x <= lower) & (d < 0)) | ((x >= upper) & (d > 0))  # clipped from t = 0+ on
    slope = torch.dot(g.masked_fill(stuck, 0.0), d)  # phi'(0+)
    if not slope < 0:  # no variable can move downhill: x is stationary in the box
        return None
    along_arc, trials = arc(evaluate, box)
    if first:
        # Nothing is known of the scale yet: the first trial is the projected gradient step
        # P(x - g), which the box keeps bounded, and the search may shorten it but not lengthen
        # it, as in L-BFGS-B. Its curvature pair then sets the scale.
        f_new, t = backtracking(along_arc, x, f, d, 1.0, float(slope))
    else:
        # t = 1 is the natural trial for a quasi-Newton step. Without a pair (all rejected so
        # far, as on a non-convex start) d is the bare gradient: a unit distance is the trial.
        t = 1.0 if len(pairs) else 1.0 / float(torch.linalg.vector_norm(d))
        f_new, _, t, _ = _strong_wolfe(along_arc, x, t, d, f, g, slope, c1=WOLFE_C1, c2=WOLFE_C2,
                                       max_ls=MAX_TRIALS)
    if not (t > 0 and f_new < f):
        return None
    x_new, g_new = trials[t]
    return x_new, f_new, g_new


def held_variables(x: Tensor, g: Tensor, box: tuple[float, float]) -> Tensor:
    """Bertsekas's epsilon-active set: near a bound, with the gradient pushing outward."""
    lower, upper = box
    band = ACTIVE_BAND * (upper - lower)
    return ((x <= lower + band) & (g > 0)) | ((x >= upper - band) & (g < 0))


def descent_direction(x: Tensor, g: Tensor, pairs: CurvaturePairs, box: tuple[float, float]) -> Tensor:
    """``-D g``: the L-BFGS step on the free variables, ``-gamma g`` on the held ones."""
    held = held_variables(x, g, box)
    free_step = pairs.times(g.masked_fill(held, 0.0), (~held).to(g.dtype))
    return torch.where(held, pairs.gamma * g, free_step).neg_()


ArcFunction = Callable[[Tensor, float, Tensor], tuple[float, Tensor]]


def arc(
    evaluate: Callable[[Tensor], tuple[float, Tensor]], box: tuple[float, float]
) -> tuple[ArcFunction, dict[float, tuple[Tensor, Tensor]]]:
    """``phi(t) = f(P(x + t d))`` in the form torch's line search calls it, ``(x, t, d) -> (phi,
    v)`` with ``v'd = phi'(t)``, and the dict where each trial's point and gradient are kept."""
    trials: dict[float, tuple[Tensor, Tensor]] = {}

    def along_arc(x: Tensor, t: float, d: Tensor) -> tuple[float, Tensor]:
        x_t = (x + t * d).clamp_(*box)
        f_t, g_t = evaluate(x_t)
        trials[t] = x_t, g_t
        # A clipped variable does not move with t, so its term of phi'(t) drops out.
        return f_t, g_t.masked_fill(x_t != x + t * d, 0.0)

    return along_arc, trials


def backtracking(
    along_arc: ArcFunction, x: Tensor, f: float, d: Tensor, t: float, slope: float
) -> tuple[float, float]:
    """Armijo backtracking from ``t``: ``(phi(t), t)`` for the first ``t`` that decreases
    ``f`` enough, ``(f, 0)`` when none does. Each shorter trial minimises the parabola through
    ``phi(0)``, ``phi'(0)`` and ``phi(t)``, kept in ``[t/10, t/2]`` (Nocedal & Wright sec. 3.5)."""
    for _ in range(MAX_TRIALS):
        f_t, _ = along_arc(x, t, d)
        if f_t < f and f_t <= f + WOLFE_C1 * t * slope:
            return f_t, t
        t = min(max(-slope * t * t / (2 * (f_t - f - slope * t)), t / 10), t / 2)
    return f, 0.0
