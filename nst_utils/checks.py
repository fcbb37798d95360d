"""Checks for the notebooks' "Your turn" cells: run a learner's function, say what is wrong.

Each ``check_*`` function takes the learner's function, runs it on fixed inputs of several
shapes, compares it with this package's own and returns a :class:`Verdict`, whose one line
Jupyter shows under the cell: correct (with the largest relative error), ``not written yet``
(the stub still returns ``None`` or raises ``NotImplementedError``), or what is wrong in the
paper's terms. Mistakes are recognised, not guessed: a constant factor is named by the
quantities it equals in every case (``M_l``, ``N_l``, ``N_l^2``, 2, 4, the number of elements),
and the common wrong formulas (a transposed Gram matrix, features reshaped instead of flattened,
the PyTorch tutorial's normalisation, an L1 total variation, ...) are computed and compared.
The checks run in this order and report the first problem found:

1. the function runs and returns a tensor (an exception is reported in one line);
2. it leaves its inputs as they were (no ``-=``, ``.sub_()``, ``.data`` writes on them);
3. the result has the right shape (batch dimension kept or dropped, ``M_l x M_l`` Gram);
4. the values: equal, a named mistake, or a constant factor;
5. the gradient flows to the input and equals the package's (no ``.detach()``, ``.item()``,
   NumPy) and float64 inputs give a float64 result;
6. the result is made on the input's device: the function runs once more on *fake* CUDA
   tensors (PyTorch's ``FakeTensorMode``, which follows devices and shapes without memory or a
   GPU), so that a CPU-only machine finds the ``torch.zeros(n, n)`` or ``torch.tensor(matrix)``
   made without ``device=`` that would fail on a GPU. A function whose control flow depends on
   values (``if x.std() > 0``) cannot run there and is not judged on this step.

Example: ``check_gram_matrix(lambda f: f.flatten(2) @ f.flatten(2).transpose(1, 2))`` shows
``gram_matrix: correct (4 cases, largest relative error 0)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from . import color, losses

#: Relative tolerance of a float32 result against the package's.
RTOL = 1e-4


@dataclass(frozen=True)
class Verdict:
    """What a check found: ``status`` is ``"correct"``, ``"wrong"`` or ``"not written yet"``."""

    name: str
    status: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "correct"

    def __str__(self) -> str:
        return f"{self.name}: {self.status}" + (f" ({self.detail})" if self.passed else
                                                 f": {self.detail}" if self.detail else "")

    __repr__ = __str__  # the line Jupyter shows when a check ends a cell


@dataclass(frozen=True)
class Case:
    """One call: the arguments, and the sizes (the paper's symbols) that factors are named by."""

    args: tuple
    sizes: Mapping[str, float]


@dataclass(frozen=True)
class Mistake:
    """A wrong formula a learner often writes, computed on the same inputs, and what it means."""

    compute: Callable[..., Tensor]
    says: str


@dataclass(frozen=True)
class Exercise:
    """A function to write: its reference, its inputs, and the mistakes the check knows."""

    name: str
    reference: Callable[..., Tensor]
    cases: Callable[[torch.dtype], list[Case]]
    mistakes: tuple[Mistake, ...] = ()
    #: Constant factors (result / reference) by their exponents, e.g. ``(("M_l", -1),)``, and
    #: what each means; any other product of the case's sizes is named generically.
    factors: Mapping[tuple[tuple[str, int], ...], str] = field(default_factory=dict)
    #: Which arguments the gradient must reach.
    differentiable: tuple[int, ...] = (0,)


class _Found(Exception):
    """A verdict reached early: raised by a step, caught by :func:`check`."""

    def __init__(self, status: str, detail: str = "") -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


# --------------------------------------------------------------------------------- the steps

def _map(obj, fn: Callable[[Tensor], Tensor]):
    """``fn`` applied to every tensor in an argument (a tensor, a dict of tensors, a number)."""
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, Mapping):
        return {key: _map(value, fn) for key, value in obj.items()}
    return obj


def _tensors(obj) -> list[Tensor]:
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, Mapping):
        return [t for value in obj.values() for t in _tensors(value)]
    return []


def _call(fn: Callable, args: tuple):
    """The learner's result, or a :class:`_Found` for a stub, an exception or a non-tensor."""
    try:
        out = fn(*args)
    except NotImplementedError:
        raise _Found("not written yet") from None
    except Exception as error:  # noqa: BLE001 (the learner's code: any exception is one line)
        raise _Found("wrong", _describe_exception(error)) from None
    if out is None:
        raise _Found("not written yet")
    if isinstance(out, (int, float)):
        raise _Found("wrong", "returns a Python number, not a tensor: .item() or float() cuts the "
                              "gradient; return the tensor itself")
    if not isinstance(out, Tensor):
        raise _Found("wrong", f"returns a {type(out).__name__}, not a torch.Tensor: compute with "
                              "torch operations so that autograd can follow them")
    return out


def _describe_exception(error: Exception) -> str:
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    lower = message.lower()
    if "numpy" in lower and "grad" in lower:
        return ("goes through NumPy, which autograd cannot follow: the loss would have no "
                "gradient; use torch operations")
    if "scalar type" in lower or "dtype" in lower:
        return ("mixes dtypes: a float32 constant meets float64 inputs; make constants with "
                "the input's dtype (torch.tensor(..., dtype=x.dtype) or .to(x))")
    if len(message) > 120:
        message = message[:117] + "..."
    return f"raises {type(error).__name__}: {message}" if message else f"raises {type(error).__name__}"


def _check_inputs_kept(args: tuple, before: tuple) -> None:
    for position, (now, was) in enumerate(zip(args, before)):
        for t_now, t_was in zip(_tensors(now), _tensors(was)):
            if not torch.equal(t_now, t_was):
                raise _Found("wrong", f"changes its argument {position + 1} in place (-=, .sub_(), "
                                      "a slice assignment): its inputs must stay as they are "
                                      "(the optimiser's image, the targets); compute a new tensor")


def _check_shape(out: Tensor, ref: Tensor, case: Case) -> None:
    if out.shape == ref.shape:
        return
    got, want = tuple(out.shape), tuple(ref.shape)
    if ref.dim() == 0 and out.numel() == 1:
        detail = (f"returns shape {got}, not a scalar: a batch dimension was kept; "
                  "sum over it (or index it away)")
    elif ref.dim() >= 1 and got == want[1:]:
        detail = f"returns shape {got} where {want} is expected: the batch dimension was dropped"
    elif ref.dim() >= 1 and out.dim() == ref.dim() and got[1:] == want[1:]:
        detail = (f"returns shape {got} for a batch of {want[0]}: each image of the batch needs "
                  "its own result (keep dimension 0 as it is)")
    elif ref.dim() >= 1 and got[1:] == want:
        detail = f"returns shape {got} where {want} is expected: an extra dimension was added"
    elif "M_l" in case.sizes and case.sizes["M_l"] in got and got[-1] == got[-2]:
        detail = (f"returns shape {got}, an M_l x M_l matrix: the product F^T F is taken where "
                  "eq. 3 has F F^T (rows are filters, columns positions; G is N_l x N_l)")
    else:
        detail = f"returns shape {got} where {want} is expected"
    raise _Found("wrong", detail)


def _close(out: Tensor, ref: Tensor, rtol: float = RTOL) -> bool:
    scale = ref.abs().max().clamp_min(1e-30)
    return out.shape == ref.shape and bool(((out - ref).abs().max() <= rtol * scale).item())


def _relative_error(out: Tensor, ref: Tensor) -> float:
    return ((out - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


def _ratio(out: Tensor, ref: Tensor) -> float | None:
    """The constant ``r`` with ``out = r * ref``, or ``None`` when there is none."""
    out, ref = out.double(), ref.double()
    denominator = (ref * ref).sum()
    if denominator == 0:
        return None
    r = ((out * ref).sum() / denominator).item()
    return r if r != 0 and _close(out, r * ref, 1e-3) else None


def _factor_terms(sizes: Mapping[str, float]) -> list[tuple[tuple[str, int], ...]]:
    """Candidate factors: 2^a times at most two of the case's sizes, each to the power +-1, +-2."""
    symbols = [s for s in sizes if s != "2"]
    combos: list[tuple[tuple[str, int], ...]] = []
    powers = (-2, -1, 1, 2)
    for a in (-2, -1, 0, 1, 2):
        base = (("2", a),) if a else ()
        combos.append(base)
        for k in (1, 2):
            for chosen in itertools.combinations(symbols, k):
                for exps in itertools.product(powers, repeat=k):
                    combos.append(base + tuple(zip(chosen, exps)))
    return sorted(combos, key=lambda c: sum(abs(e) for _, e in c))  # simplest first


def _factor_value(term: tuple[tuple[str, int], ...], sizes: Mapping[str, float]) -> float:
    return math.prod((2.0 if s == "2" else sizes[s]) ** e for s, e in term)


def _name_factor(term: tuple[tuple[str, int], ...]) -> str:
    """``(("2", 2), ("N_l", -2))`` -> ``"off by a factor 4/N_l²"``."""
    def power(items):
        return "·".join(str(2 ** abs(e)) if s == "2" else s if abs(e) == 1 else
                        f"({s})²" if s.startswith("Σ") else f"{s}²" for s, e in items)
    up = [(s, e) for s, e in term if e > 0]
    down = [(s, e) for s, e in term if e < 0]
    if not down:
        return f"{power(up)} times too large"
    if not up:
        return f"{power(down)} times too small"
    below = power(down)
    return f"off by a factor {power(up)}/" + (f"({below})" if len(down) > 1 else below)


def _diagnose_values(exercise: Exercise, cases: list[Case], outs: list[Tensor],
                     refs: list[Tensor]) -> str:
    for mistake in exercise.mistakes:
        try:
            if all(_close(out, mistake.compute(*case.args), 1e-3) for out, case in zip(outs, cases)):
                return mistake.says
        except RuntimeError:  # a mistake whose shapes do not fit these inputs
            continue
    ratios = [_ratio(out, ref) for out, ref in zip(outs, refs)]
    if all(r is not None for r in ratios):
        for term in _factor_terms(cases[0].sizes):
            if term and all(math.isclose(r, _factor_value(term, c.sizes), rel_tol=1e-3)
                            for r, c in zip(ratios, cases)):
                key = tuple(sorted(term))
                meaning = exercise.factors.get(key)
                return _name_factor(term) + (f": {meaning}" if meaning else "")
        if len({round(r, 6) for r in ratios}) == 1:
            return f"{ratios[0]:.4g} times the expected value in every case"
        if refs[0].dim() > 0:  # every entry off by one factor: a scale that depends on the shape
            return ("a multiple of the expected value that changes with the shape "
                    f"({', '.join(f'{r:.3g}' for r in ratios)}): a normalisation by the wrong size")
    worst = max(_relative_error(out, ref) for out, ref in zip(outs, refs))
    return f"values differ from the expected ones (largest relative error {worst:.2g})"


def _requiring_grad(args: tuple, positions: tuple[int, ...]) -> tuple:
    """A copy of ``args`` whose tensors at ``positions`` are fresh leaves that require a gradient."""
    return tuple(_map(a, lambda t: t.detach().clone().requires_grad_(True)) if i in positions else a
                 for i, a in enumerate(args))


def _leaves(args: tuple, positions: tuple[int, ...]) -> list[Tensor]:
    return [t for i in positions for t in _tensors(args[i])]


def _check_gradient(fn: Callable, exercise: Exercise) -> None:
    """In float64 with gradients: the result keeps float64, and its gradient is the package's."""
    for case in exercise.cases(torch.float64):
        args = _requiring_grad(case.args, exercise.differentiable)
        ref_args = _requiring_grad(case.args, exercise.differentiable)
        out = _call(fn, args)
        if out.grad_fn is None:
            raise _Found("wrong", "the result has no gradient: it was cut from the input "
                                  "(.detach(), .data, .item(), torch.tensor(...) or NumPy)")
        if out.dtype != torch.float64:
            raise _Found("wrong", f"returns {out.dtype} for float64 inputs: make new tensors with "
                                  "the input's dtype (torch.zeros_like, x.new_zeros, .to(x.dtype))")
        ref = exercise.reference(*ref_args)
        weights = torch.linspace(0.5, 1.5, ref.numel(), dtype=ref.dtype).reshape(ref.shape)
        grads = torch.autograd.grad((out * weights).sum(), _leaves(args, exercise.differentiable),
                                    allow_unused=True)
        ref_grads = torch.autograd.grad((ref * weights).sum(), _leaves(ref_args, exercise.differentiable))
        for grad, ref_grad in zip(grads, ref_grads):
            if grad is None or not _close(grad, ref_grad, 1e-6):
                raise _Found("wrong", "the values are right but the gradient is not: part of the "
                                      "computation is cut from the input (.detach() or .data)")


def _fake_cuda(obj: Any) -> Any:
    """``obj`` with each tensor replaced by an empty CUDA tensor of its shape and dtype (fake,
    when called inside ``FakeTensorMode``)."""
    return _map(obj, lambda t: torch.empty(t.shape, dtype=t.dtype, device="cuda"))


def _check_device(fn: Callable, case: Case) -> None:
    """Run on fake CUDA inputs of ``case``'s shapes: a tensor the function makes on the CPU meets
    them and fails, or comes back as the result."""
    try:
        from torch._subclasses.fake_tensor import FakeTensorMode
    except ImportError:  # a PyTorch without it: this step is skipped
        return
    with FakeTensorMode():
        try:
            args = tuple(_fake_cuda(a) for a in case.args)
            out = fn(*args)
        except Exception as error:  # noqa: BLE001 (only a device error counts; others are fake mode's limits)
            if "device" in str(error).lower():
                raise _Found("wrong", "mixes devices: a tensor is made on the CPU whatever the "
                                      "input's device (torch.zeros(...), torch.tensor(...) without "
                                      "device=); on a GPU this fails. Use x.new_zeros, zeros_like "
                                      "or .to(x.device)") from None
            return
        if isinstance(out, Tensor) and out.device.type != "cuda":
            raise _Found("wrong", f"returns a tensor on the {out.device.type.upper()} for inputs on "
                                  "a GPU: make the result on the input's device")


def check(fn: Callable, exercise: Exercise) -> Verdict:
    """Run ``fn`` against ``exercise`` through the steps of the module docstring."""
    if not callable(fn):
        return Verdict(exercise.name, "wrong", f"expected a function, got {type(fn).__name__}")
    try:
        cases = exercise.cases(torch.float32)
        outs, refs = [], []
        for case in cases:
            kept = tuple(_map(a, lambda t: t.clone()) for a in case.args)
            out = _call(fn, case.args)
            _check_inputs_kept(case.args, kept)
            ref = exercise.reference(*kept)
            _check_shape(out, ref, case)
            outs.append(out.detach().to("cpu", torch.float64))
            refs.append(ref.detach().double())
        if not all(_close(out, ref) for out, ref in zip(outs, refs)):
            raise _Found("wrong", _diagnose_values(exercise, cases, outs, refs))
        _check_gradient(fn, exercise)
        _check_device(fn, cases[0])
    except _Found as found:
        return Verdict(exercise.name, found.status, found.detail)
    worst = max(_relative_error(out, ref) for out, ref in zip(outs, refs))
    return Verdict(exercise.name, "correct", f"{len(cases)} cases, largest relative error {worst:.2g}")


# ------------------------------------------------------------------------------ the exercises

def _k(*pairs) -> tuple[tuple[str, int], ...]:
    """A factor's key from ``symbol, exponent, symbol, exponent, ...``."""
    return tuple(sorted(zip(pairs[::2], pairs[1::2])))


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)  # the same inputs on every call


def _features(shape: Sequence[int], g: torch.Generator, dtype: torch.dtype) -> Tensor:
    """Rectified random responses (about half of them zero), like a ``relu`` layer's."""
    return torch.randn(*shape, generator=g, dtype=torch.float64).clamp_min(0).to(dtype)


def _sizes(shape: Sequence[int]) -> dict[str, float]:
    return {"N_l": shape[1], "M_l": shape[2] * shape[3]}


_MAP_SHAPES = ((1, 3, 5, 7), (1, 8, 6, 5), (1, 5, 4, 9))


def _gram_cases(dtype: torch.dtype) -> list[Case]:
    g = _generator()
    shapes = (*_MAP_SHAPES, (2, 4, 3, 5))
    return [Case((_features(s, g, dtype),), {**_sizes(s), "B": s[0]}) for s in shapes]


def _reshaped_gram(f: Tensor) -> Tensor:
    x = f.reshape(f.shape[0], -1, f.shape[1])  # (B, M, N) by reshape: filters and positions mixed
    return x.transpose(1, 2) @ x


def _centred_gram(f: Tensor) -> Tensor:
    x = f.flatten(2)
    x = x - x.mean(-1, keepdim=True)
    return x @ x.transpose(1, 2)


GRAM_MATRIX = Exercise(
    name="gram_matrix",
    reference=losses.gram_matrix,
    cases=_gram_cases,
    mistakes=(
        Mistake(_reshaped_gram, "the features were reshaped to (M_l, N_l) with .view or .reshape, "
                "which mixes filters and positions; flatten to (N_l, M_l) (f.flatten(2)) and "
                "transpose that"),
        Mistake(_centred_gram, "each filter's mean is subtracted first, which makes a covariance "
                "matrix; eq. 3 uses the responses as they are"),
    ),
    factors={
        _k("M_l", -1): "a mean over positions; eq. 3 sums (the 1/M_l belongs to the loss, eq. 4)",
        _k("M_l", -1, "N_l", -1): "divided by N_l M_l as the PyTorch tutorial does; eq. 3 is "
                                  "unnormalised",
        _k("N_l", -1): "divided by N_l; eq. 3 is unnormalised",
    },
)


def _pair_cases(dtype: torch.dtype) -> list[Case]:
    g = _generator()
    return [Case((_features(s, g, dtype), _features(s, g, dtype)), _sizes(s)) for s in _MAP_SHAPES]


CONTENT_LOSS = Exercise(
    name="content_loss",
    reference=losses.content_loss_paper,
    cases=_pair_cases,
    mistakes=(
        Mistake(losses.content_loss, "this is nst.content_loss, eq. 1 times C/(N_l M_l) with "
                "C = 100; the exercise asks for eq. 1 itself, 1/2 times the sum"),
        Mistake(lambda f, p: 0.5 * (f - p).abs().sum(), "absolute differences; eq. 1 squares them"),
        Mistake(lambda f, p: (f - p).abs().sum(), "absolute differences; eq. 1 squares them"),
        Mistake(lambda f, p: 0.5 * (f - p).sum() ** 2, "the square of the summed differences; "
                "eq. 1 sums the squared differences"),
        Mistake(lambda f, p: 0.5 * (f - p).norm(), "the norm ||F - P||, not its square"),
        Mistake(lambda f, p: (f - p).norm(), "the norm ||F - P||, not half its square"),
    ),
    factors={
        _k("2", 1): "the 1/2 of eq. 1 is missing",
        _k("2", -1): "1/4 where eq. 1 has 1/2",
        _k("M_l", -1, "N_l", -1): "a mean over the N_l M_l elements where eq. 1 sums",
        _k("2", 1, "M_l", -1, "N_l", -1): "the mean of the squared differences (nn.MSELoss) "
                                          "where eq. 1 takes half their sum",
    },
)


def _style_layer_cases(dtype: torch.dtype) -> list[Case]:
    g = _generator()
    return [Case((_features(s, g, dtype), losses.gram_matrix(_features(s, g, dtype))), _sizes(s))
            for s in _MAP_SHAPES]


def _eq4_denominator(f: Tensor) -> float:
    return 4.0 * f.shape[1] ** 2 * (f.shape[2] * f.shape[3]) ** 2  # 4 N_l^2 M_l^2


STYLE_LAYER_LOSS = Exercise(
    name="style_layer_loss",
    reference=losses.style_layer_loss,
    cases=_style_layer_cases,
    mistakes=(
        Mistake(lambda f, a: (losses.gram_matrix(f) - a).sum() / _eq4_denominator(f),
                "the differences G - A are summed without squaring them"),
        Mistake(lambda f, a: (losses.gram_matrix(f) - a).norm() / _eq4_denominator(f),
                "the norm ||G - A||, not its square"),
    ),
    factors={
        _k("2", 2): "the 1/4 of eq. 4 is missing",
        _k("2", 1): "1/2 where eq. 4 has 1/4",
        _k("N_l", 2): "the 1/N_l^2 of eq. 4 is missing",
        _k("N_l", 1): "divided by N_l where eq. 4 divides by N_l^2",
        _k("M_l", 2): "the 1/M_l^2 of eq. 4 is missing",
        _k("M_l", 1): "divided by M_l where eq. 4 divides by M_l^2",
        _k("M_l", 2, "N_l", 2): "the 1/(N_l^2 M_l^2) of eq. 4 is missing",
        _k("2", 2, "N_l", -2): "the PyTorch tutorial's normalisation (Gram divided by N_l M_l, "
                               "then the mean squared error), which is 4 E_l / N_l^2",
        _k("2", 2, "M_l", 2): "the 1/4 and the 1/M_l^2 are missing: the mean squared "
                              "difference of the Gram matrices, not per position",
    },
)

_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1")


def _style_loss_cases(dtype: torch.dtype) -> list[Case]:
    g = _generator()
    cases = []
    for count, weights in ((2, (0.7, 0.3)), (3, (0.5, 0.3, 0.2))):
        shapes = [(1, 3 * 2**i, 8 // 2**i, 10 // 2**i) for i in range(count)]
        names = _STYLE_LAYERS[:count]
        feats = {n: _features(s, g, dtype) for n, s in zip(names, shapes)}
        grams = {n: losses.gram_matrix(_features(s, g, dtype)) for n, s in zip(names, shapes)}
        cases.append(Case((feats, grams, dict(zip(names, weights))), {"L": count}))
    return cases


def _unweighted(feats: Mapping[str, Tensor], grams: Mapping[str, Tensor], weights) -> Tensor:
    return sum(losses.style_layer_loss(feats[n], grams[n]) for n in weights)


def _last_layer_only(feats: Mapping[str, Tensor], grams: Mapping[str, Tensor], weights) -> Tensor:
    name = list(weights)[-1]
    return weights[name] * losses.style_layer_loss(feats[name], grams[name])


STYLE_LOSS = Exercise(
    name="style_loss",
    reference=losses.style_loss,
    cases=_style_loss_cases,
    mistakes=(
        Mistake(_unweighted, "the layer weights w_l are not applied: eq. 5 is sum_l w_l E_l"),
        Mistake(_last_layer_only, "only the last layer counts: the total is overwritten in the "
                "loop instead of added to (total = ... where total += ... belongs)"),
    ),
    factors={_k("L", -1): "the mean of the layers' w_l E_l; eq. 5 sums them"},
)


def _image_cases(dtype: torch.dtype) -> list[Case]:
    g = _generator()
    shapes = ((1, 3, 5, 7), (1, 3, 8, 6), (2, 3, 4, 5))
    return [Case((torch.rand(*s, generator=g, dtype=torch.float64).to(dtype),),
                  {"numel": math.prod(s), "pixels": s[2] * s[3], "B": s[0]}) for s in shapes]


def _differences(x: Tensor) -> tuple[Tensor, Tensor]:
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def _tv_mean(x: Tensor) -> Tensor:
    dy, dx = _differences(x)
    return dy.pow(2).mean() + dx.pow(2).mean()


def _tv_l1(x: Tensor) -> Tensor:
    dy, dx = _differences(x)
    return dy.abs().sum() + dx.abs().sum()


def _squares_on_the_inner_grid(x: Tensor) -> Tensor:
    """``dy^2 + dx^2`` where both differences exist, the ``(H-1) x (W-1)`` grid."""
    dy, dx = _differences(x)
    return dy[..., :, :-1].pow(2) + dx[..., :-1, :].pow(2)


def _tv_isotropic(x: Tensor) -> Tensor:
    return _squares_on_the_inner_grid(x).sqrt().sum()


def _tv_cropped(x: Tensor) -> Tensor:
    return _squares_on_the_inner_grid(x).sum()


def _tv_rolled(x: Tensor) -> Tensor:
    return (x.roll(1, -2) - x).pow(2).sum() + (x.roll(1, -1) - x).pow(2).sum()


TV_LOSS = Exercise(
    name="tv_loss",
    reference=losses.tv_loss,
    cases=_image_cases,
    mistakes=(
        Mistake(_tv_mean, "the squared differences are averaged; this package sums them"),
        Mistake(_tv_l1, "absolute differences (the L1 total variation); this package squares them"),
        Mistake(_tv_isotropic, "the isotropic total variation sum sqrt(dx^2 + dy^2); this package "
                "sums the squares dx^2 + dy^2"),
        Mistake(_tv_cropped, "both differences are cut to the (H-1) x (W-1) grid, which drops the "
                "last row's horizontal and the last column's vertical differences; this package "
                "sums all of them"),
        Mistake(lambda x: _differences(x)[0].pow(2).sum(), "only vertical neighbours; add the "
                "horizontal differences"),
        Mistake(lambda x: _differences(x)[1].pow(2).sum(), "only horizontal neighbours; add the "
                "vertical differences"),
        Mistake(_tv_rolled, "torch.roll wraps around, so the last row is compared with the first; "
                "take differences of neighbours inside the image"),
    ),
    factors={_k("numel", -1): "divided by the number of elements (a mean); this package sums",
             _k("B", -1): "divided by the batch size; this package sums over the batch"},
)


def _total_reference(content: Tensor, style: Tensor, ratio: float, style_weight: float) -> Tensor:
    return ratio * style_weight * content + style_weight * style


def _total_cases(dtype: torch.dtype) -> list[Case]:
    g = _generator()
    settings = ((1e-3, 1.0), (2e-2, 10.0), (0.5, 3.0))
    return [Case((torch.rand((), generator=g, dtype=torch.float64).to(dtype) + 0.5,
                  torch.rand((), generator=g, dtype=torch.float64).to(dtype) + 0.5, r, b), {})
            for r, b in settings]


TOTAL_LOSS = Exercise(
    name="total_loss",
    reference=_total_reference,
    cases=_total_cases,
    mistakes=(
        Mistake(lambda c, s, r, b: r * c + b * s, "alpha = ratio x beta, not the ratio itself "
                "(the same only when beta = 1)"),
        Mistake(lambda c, s, r, b: r * c + s, "beta is not applied: alpha = ratio x beta "
                "multiplies the content loss, beta the style loss"),
        Mistake(lambda c, s, r, b: b / r * c + b * s, "alpha = beta / ratio: the ratio is "
                "alpha/beta, so alpha = ratio x beta"),
        Mistake(lambda c, s, r, b: r * b * s + b * c, "alpha weights the style loss and beta the "
                "content loss: swapped"),
        Mistake(lambda c, s, r, b: r * b * c + s, "beta is not applied to the style loss"),
        Mistake(lambda c, s, r, b: b * c + r * s, "the ratio multiplies the style loss; "
                "alpha = ratio x beta multiplies the content loss, beta the style loss"),
        Mistake(lambda c, s, r, b: r / b * c + b * s, "alpha = ratio / beta: the ratio is "
                "alpha/beta, so alpha = ratio x beta"),
    ),
    differentiable=(0, 1),
)


def _masked_cases(dtype: torch.dtype) -> list[Case]:
    g = _generator()
    cases = []
    for s in (*_MAP_SHAPES, (2, 4, 3, 5)):
        mask = torch.rand(1, 1, s[2], s[3], generator=g, dtype=torch.float64).to(dtype)
        sizes = {**_sizes(s), "ΣT": mask.sum().item(), "Σ(T²)": mask.pow(2).sum().item()}
        cases.append(Case((_features(s, g, dtype), mask), sizes))
    return cases


GUIDED_GRAM_MATRIX = Exercise(
    name="guided_gram_matrix",
    reference=losses.guided_gram_matrix,
    cases=_masked_cases,
    mistakes=(
        Mistake(lambda f, t: (f * t).flatten(2) @ f.flatten(2).transpose(1, 2) / t.pow(2).sum(),
                "the mask multiplies only one factor; G_r = (F T_r)(F T_r)^T masks both"),
        Mistake(lambda f, t: losses.gram_matrix(f) / t.pow(2).sum(), "the mask is not applied to "
                "the features"),
    ),
    factors={
        _k("Σ(T²)", 1): "not divided by the mask's mass sum T^2, so a larger region gives "
                        "larger entries",
        _k("ΣT", -1, "Σ(T²)", 1): "divided by sum T (the region's area) where the package "
                                  "divides by sum T^2, the mass of the masked product",
        _k("ΣT", -2, "Σ(T²)", 1): "divided by (sum T)^2 where the package divides by sum T^2, "
                                  "the sum of the squared mask",
        _k("M_l", -1, "Σ(T²)", 1): "divided by M_l, every position of the map, not by the "
                                   "region's mass sum T^2",
    },
)

#: The BT.709 (HDTV) luma weights: a common mix-up with the paper's NTSC ones.
_BT709 = (0.2126, 0.7152, 0.0722)


def _bt709(image: Tensor) -> Tensor:
    yiq = color.rgb_to_yiq(image)
    weights = torch.tensor(_BT709, dtype=image.dtype).view(1, 3, 1, 1)
    return torch.cat([(image * weights).sum(1, keepdim=True), yiq[:, 1:]], 1)


RGB_TO_YIQ = Exercise(
    name="rgb_to_yiq",
    reference=color.rgb_to_yiq,
    cases=_image_cases,
    mistakes=(
        Mistake(lambda x: torch.einsum("ji,bjhw->bihw", color._matrix(x), x), "the matrix is "
                "applied transposed: row k gives channel k, Y = 0.299 R + 0.587 G + 0.114 B"),
        Mistake(lambda x: color.rgb_to_yiq(x.flip(1)), "the channels are read as B, G, R; the "
                "package's images are RGB"),
        Mistake(_bt709, "the luma weights are BT.709's (0.2126, 0.7152, 0.0722); YIQ's are "
                "0.299, 0.587, 0.114"),
        Mistake(color.yiq_to_rgb, "this is the inverse transform, YIQ -> RGB"),
    ),
)


def _luminance_cases(dtype: torch.dtype) -> list[Case]:
    g = _generator()
    cases = []
    for h, w in ((6, 7), (5, 9), (8, 4)):
        style = torch.rand(1, 1, h, w, generator=g, dtype=torch.float64) * 0.5 + 0.3
        content = torch.rand(1, 1, h, w, generator=g, dtype=torch.float64) * 0.8
        cases.append(Case((style.to(dtype), content.to(dtype)), {}))
    return cases


def _stats(y: Tensor) -> tuple[Tensor, Tensor]:
    return y.mean(), y.std()


def _luminance_mistake(scale: Callable[[Tensor, Tensor], Tensor],
                       add_mean: bool = True) -> Callable[[Tensor, Tensor], Tensor]:
    """``scale(sigma_S, sigma_C) (Y_S - mu_S)``, plus ``mu_C`` unless ``add_mean`` is False."""
    def compute(style_y: Tensor, content_y: Tensor) -> Tensor:
        (mu_s, sd_s), (mu_c, sd_c) = _stats(style_y), _stats(content_y)
        return scale(sd_s, sd_c) * (style_y - mu_s) + (mu_c if add_mean else 0)
    return compute


MATCH_LUMINANCE = Exercise(
    name="match_luminance",
    reference=color.match_luminance,
    cases=_luminance_cases,
    mistakes=(
        Mistake(lambda s, c: color.match_luminance(c, s), "the roles are swapped: the style's "
                "luminance is the one to move to the content's mean and spread"),
        Mistake(_luminance_mistake(lambda sd_s, sd_c: 1),
                "only the mean is moved; scale by sigma_C / sigma_S as well"),
        Mistake(_luminance_mistake(lambda sd_s, sd_c: sd_c**2 / sd_s**2),
                "scaled by the ratio of variances; the paper scales by sigma_C / sigma_S, the "
                "ratio of standard deviations"),
        Mistake(_luminance_mistake(lambda sd_s, sd_c: sd_s / sd_c),
                "scaled by sigma_S / sigma_C, upside down"),
        Mistake(_luminance_mistake(lambda sd_s, sd_c: sd_c / sd_s, add_mean=False),
                "centred but the content's mean mu_C is not added"),
    ),
)

#: Every exercise, by the name of the function the learner writes.
EXERCISES: dict[str, Exercise] = {e.name: e for e in (
    GRAM_MATRIX, CONTENT_LOSS, STYLE_LAYER_LOSS, STYLE_LOSS, TV_LOSS, TOTAL_LOSS,
    GUIDED_GRAM_MATRIX, RGB_TO_YIQ, MATCH_LUMINANCE)}


def check_gram_matrix(fn: Callable) -> Verdict:
    """``fn(features)``: ``(B, N_l, H, W)`` -> ``(B, N_l, N_l)``, eq. 3 ``G = F F^T`` unnormalised."""
    return check(fn, GRAM_MATRIX)


def check_content_loss(fn: Callable) -> Verdict:
    """``fn(F, P)``: two ``(1, N_l, H, W)`` maps -> a scalar, eq. 1 ``1/2 sum (F - P)^2``."""
    return check(fn, CONTENT_LOSS)


def check_style_layer_loss(fn: Callable) -> Verdict:
    """``fn(features, target_gram)``: ``(1, N_l, H, W)`` and ``(1, N_l, N_l)`` -> a scalar, eq. 4
    ``E_l = 1/(4 N_l^2 M_l^2) sum (G - A)^2``."""
    return check(fn, STYLE_LAYER_LOSS)


def check_style_loss(fn: Callable) -> Verdict:
    """``fn(features, target_grams, layer_weights)``: dicts by layer name -> a scalar, eq. 5
    ``sum_l w_l E_l``."""
    return check(fn, STYLE_LOSS)


def check_tv_loss(fn: Callable) -> Verdict:
    """``fn(image)``: ``(B, 3, H, W)`` -> a scalar, the summed squared differences of vertical and
    horizontal neighbours (``nst.tv_loss``)."""
    return check(fn, TV_LOSS)


def check_total_loss(fn: Callable) -> Verdict:
    """``fn(content, style, ratio, style_weight)`` -> eq. 7 ``alpha L_content + beta L_style`` with
    ``beta = style_weight`` and ``alpha = ratio x beta``."""
    return check(fn, TOTAL_LOSS)


def check_guided_gram_matrix(fn: Callable) -> Verdict:
    """``fn(features, mask)``: ``(B, N_l, H, W)`` and ``(1, 1, H, W)`` -> ``(B, N_l, N_l)``,
    ``(F T)(F T)^T / sum T^2`` (``nst.losses.guided_gram_matrix``)."""
    return check(fn, GUIDED_GRAM_MATRIX)


def check_rgb_to_yiq(fn: Callable) -> Verdict:
    """``fn(image)``: ``(B, 3, H, W)`` RGB -> ``(B, 3, H, W)`` YIQ (``nst.color.rgb_to_yiq``)."""
    return check(fn, RGB_TO_YIQ)


def check_match_luminance(fn: Callable) -> Verdict:
    """``fn(style_y, content_y)``: two ``(1, 1, H, W)`` luminance maps -> the style's, moved to
    the content's mean and standard deviation (``nst.color.match_luminance``)."""
    return check(fn, MATCH_LUMINANCE)
