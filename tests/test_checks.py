"""The "Your turn" checks: each recognises each mistake it names, on a deliberately wrong
function, and passes correct functions written differently from the package's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as tf

from nst_utils import checks, color, losses

YIQ = [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]]


def _flat(f):
    return f.reshape(f.shape[0], f.shape[1], -1)


def _gram(f):
    return torch.einsum("bnk,bmk->bnm", _flat(f), _flat(f))


def _nm(f):
    return f.shape[1], f.shape[2] * f.shape[3]


def _gram_loop(f):
    b, n, _, _ = f.shape
    g = torch.zeros(b, n, n)  # float32 on the CPU whatever the input
    for i in range(b):
        g[i] = _flat(f)[i] @ _flat(f)[i].T
    return g


def _gram_wrong_device(f):
    g = torch.zeros(f.shape[0], f.shape[1], f.shape[1], dtype=f.dtype)  # no device=
    return g + _gram(f)


def _gram_in_place(f):
    f -= f.mean()
    return _gram(f)


def _gram_numpy(f):
    x = _flat(f).numpy()
    return torch.from_numpy(x @ x.transpose(0, 2, 1))


def _not_implemented(*args):
    raise NotImplementedError("your code here")


def _stub(*args):
    """A docstring and nothing else: what a "Your turn" cell holds before it is filled."""


def _style_layer(f, a):
    n, m = _nm(f)
    return ((_gram(f) - a) ** 2).sum() / (4 * n**2 * m**2)


def _style(feats, grams, weights):
    return sum(w * _style_layer(feats[name], grams[name]) for name, w in weights.items())


def _tv(x):
    return (x.diff(dim=-2) ** 2).sum() + (x.diff(dim=-1) ** 2).sum()


def _yiq(x):
    return torch.einsum("ij,bjhw->bihw", torch.tensor(YIQ, dtype=x.dtype, device=x.device), x)


def _match(s, c):
    return (s - s.mean()) * (c.std(unbiased=False) / s.std(unbiased=False)) + c.mean()


def _guided(f, t):
    return _gram(f * t) / (t * t).sum()


CORRECT = [
    ("gram_matrix", _gram),
    ("gram_matrix", lambda f: _flat(f) @ _flat(f).transpose(1, 2)),
    ("gram_matrix", lambda f: torch.bmm(f.permute(0, 2, 3, 1).flatten(1, 2).transpose(1, 2),
                                        f.permute(0, 2, 3, 1).flatten(1, 2))),
    ("content_loss", lambda f, p: 0.5 * ((f - p) ** 2).sum()),
    ("content_loss", lambda f, p: 0.5 * tf.mse_loss(f, p, reduction="sum")),
    ("style_layer_loss", _style_layer),
    ("style_layer_loss", lambda f, a: tf.mse_loss(losses.gram_matrix(f) / _nm(f)[1], a / _nm(f)[1]) / 4),
    ("style_loss", _style),
    ("tv_loss", _tv),
    ("tv_loss", losses.tv_loss),
    ("total_loss", lambda c, s, r, b: b * (r * c + s)),
    ("guided_gram_matrix", _guided),
    ("rgb_to_yiq", _yiq),
    ("rgb_to_yiq", lambda x: (x.movedim(1, -1) @ torch.tensor(YIQ).to(x).T).movedim(-1, 1)),
    ("match_luminance", _match),
    ("match_luminance", color.match_luminance),
]


@pytest.mark.parametrize(("name", "fn"), CORRECT)
def test_a_correct_function_passes(name, fn):
    verdict = checks.check(fn, checks.EXERCISES[name])
    assert verdict.passed, verdict
    assert str(verdict).startswith(f"{name}: correct (")


@pytest.mark.parametrize("name", list(checks.EXERCISES))
@pytest.mark.parametrize("stub", [_stub, _not_implemented], ids=["docstring only", "raises"])
def test_a_stub_is_not_written_yet(name, stub):
    assert str(checks.check(stub, checks.EXERCISES[name])) == f"{name}: not written yet"


# (exercise, the learner's function, what the verdict must say)
MISTAKES = [
    ("gram_matrix", lambda f: _gram(f) / _nm(f)[1], "M_l times too small: a mean over positions"),
    ("gram_matrix", lambda f: _gram(f) / (_nm(f)[0] * _nm(f)[1]), "N_l·M_l times too small"),
    ("gram_matrix", lambda f: _gram(f) / _nm(f)[0], "N_l times too small"),
    ("gram_matrix", lambda f: _flat(f).transpose(1, 2) @ _flat(f), "an M_l x M_l matrix"),
    ("gram_matrix", lambda f: _gram(f)[0], "the batch dimension was dropped"),
    ("gram_matrix", lambda f: _gram(f)[None], "an extra dimension was added"),
    ("gram_matrix", lambda f: f.reshape(1, -1, f.shape[1]).transpose(1, 2) @ f.reshape(1, -1, f.shape[1]),
     "for a batch of 2"),
    ("gram_matrix", lambda f: f.view(f.shape[0], -1, f.shape[1]).mT @ f.view(f.shape[0], -1, f.shape[1]),
     "reshaped to (M_l, N_l)"),
    ("gram_matrix", lambda f: _gram(f - f.mean((2, 3), keepdim=True)), "covariance"),
    ("gram_matrix", lambda f: _gram(f).detach(), "has no gradient"),
    ("gram_matrix", lambda f: _gram(f.data), "has no gradient"),
    ("gram_matrix", _gram_numpy, "NumPy"),
    ("gram_matrix", _gram_loop, "returns torch.float32 for float64 inputs"),
    ("gram_matrix", _gram_wrong_device, "mixes devices"),
    ("gram_matrix", _gram_in_place, "changes its argument 1 in place"),
    ("gram_matrix", lambda f: _gram(f).tolist(), "returns a list, not a torch.Tensor"),
    ("gram_matrix", lambda f: f.flatten(2) @ f.flatten(2).mT.mT, "raises RuntimeError"),
    ("content_loss", lambda f, p: ((f - p) ** 2).sum(), "2 times too large: the 1/2 of eq. 1 is missing"),
    ("content_loss", lambda f, p: 0.25 * ((f - p) ** 2).sum(), "1/4 where eq. 1 has 1/2"),
    ("content_loss", lambda f, p: 0.5 * ((f - p) ** 2).mean(), "a mean over the N_l M_l elements"),
    ("content_loss", tf.mse_loss, "nn.MSELoss"),
    ("content_loss", losses.content_loss, "this is nst.content_loss"),
    ("content_loss", lambda f, p: 0.5 * ((f - p) ** 2).sum((1, 2, 3)), "a batch dimension was kept"),
    ("content_loss", lambda f, p: 0.5 * (f - p).abs().sum(), "absolute differences"),
    ("content_loss", lambda f, p: 0.5 * (f - p).sum() ** 2, "the square of the summed differences"),
    ("content_loss", lambda f, p: 0.5 * ((f - p) ** 2).sum().item(), "returns a Python number"),
    ("content_loss", lambda f, p: torch.tensor(0.5 * ((f - p) ** 2).sum().item(), dtype=f.dtype),
     "has no gradient"),
    ("content_loss", lambda f, p: 0.5 * ((f - p.sub_(0)) ** 2).sum() + 0 * p.add_(1).sum(),
     "changes its argument 2 in place"),
    ("style_layer_loss", lambda f, a: 4 * _style_layer(f, a), "the 1/4 of eq. 4 is missing"),
    ("style_layer_loss", lambda f, a: 2 * _style_layer(f, a), "1/2 where eq. 4 has 1/4"),
    ("style_layer_loss", lambda f, a: _nm(f)[0] ** 2 * _style_layer(f, a), "the 1/N_l^2 of eq. 4"),
    ("style_layer_loss", lambda f, a: _nm(f)[0] * _style_layer(f, a), "divided by N_l where"),
    ("style_layer_loss", lambda f, a: _nm(f)[1] ** 2 * _style_layer(f, a), "the 1/M_l^2 of eq. 4"),
    ("style_layer_loss", lambda f, a: _nm(f)[1] * _style_layer(f, a), "divided by M_l where"),
    ("style_layer_loss", lambda f, a: tf.mse_loss(_gram(f), a), "not per position"),
    ("style_layer_loss", lambda f, a: tf.mse_loss(_gram(f) / (_nm(f)[0] * _nm(f)[1]),
                                                  a / (_nm(f)[0] * _nm(f)[1])), "PyTorch tutorial"),
    ("style_layer_loss", lambda f, a: (_gram(f) - a).sum() / (4 * _nm(f)[0] ** 2 * _nm(f)[1] ** 2),
     "without squaring"),
    ("style_loss", lambda f, a, w: _style(f, a, w) / len(w), "L times too small"),
    ("style_loss", lambda f, a, w: sum(_style_layer(f[n], a[n]) for n in w), "w_l are not applied"),
    ("style_loss", lambda f, a, w: [w[n] * _style_layer(f[n], a[n]) for n in w][-1], "only the last layer"),
    ("tv_loss", lambda x: _tv(x) / x.numel(), "numel times too small"),
    ("tv_loss", lambda x: (x.diff(dim=-2) ** 2).mean() + (x.diff(dim=-1) ** 2).mean(), "averaged"),
    ("tv_loss", lambda x: x.diff(dim=-2).abs().sum() + x.diff(dim=-1).abs().sum(), "L1"),
    ("tv_loss", lambda x: (x.diff(dim=-2) ** 2).sum(), "only vertical"),
    ("tv_loss", lambda x: (x.diff(dim=-1) ** 2).sum(), "only horizontal"),
    ("tv_loss", lambda x: ((x - x.roll(1, 2)) ** 2).sum() + ((x - x.roll(1, 3)) ** 2).sum(), "wraps around"),
    ("tv_loss", lambda x: 2 * _tv(x), "2 times too large"),
    ("total_loss", lambda c, s, r, b: r * c + b * s, "not the ratio itself"),
    ("total_loss", lambda c, s, r, b: b / r * c + b * s, "alpha = beta / ratio"),
    ("total_loss", lambda c, s, r, b: r * b * s + b * c, "swapped"),
    ("total_loss", lambda c, s, r, b: r * c + s, "beta is not applied"),
    ("guided_gram_matrix", lambda f, t: _gram(f * t), "not divided by the mask's mass"),
    ("guided_gram_matrix", lambda f, t: _gram(f * t) / t.sum(), "divided by sum T"),
    ("guided_gram_matrix", lambda f, t: _gram(f * t) / _nm(f)[1], "divided by M_l"),
    ("guided_gram_matrix", lambda f, t: _flat(f * t) @ _flat(f).transpose(1, 2) / (t * t).sum(),
     "only one factor"),
    ("guided_gram_matrix", lambda f, t: _gram(f) / (t * t).sum(), "mask is not applied"),
    ("rgb_to_yiq", lambda x: torch.einsum("ji,bjhw->bihw", torch.tensor(YIQ).to(x), x), "transposed"),
    ("rgb_to_yiq", lambda x: _yiq(x.flip(1)), "B, G, R"),
    ("rgb_to_yiq", lambda x: _yiq(x)[0], "the batch dimension was dropped"),
    ("rgb_to_yiq", lambda x: torch.einsum("ij,bjhw->bihw", torch.tensor(YIQ), x), "mixes dtypes"),
    ("rgb_to_yiq", lambda x: torch.stack([(x * torch.tensor(row, dtype=x.dtype).view(1, 3, 1, 1)).sum(1)
                                          for row in YIQ], 1), "mixes devices"),
    ("rgb_to_yiq", lambda x: torch.cat([(x * torch.tensor([0.2126, 0.7152, 0.0722]).to(x).view(1, 3, 1, 1))
                                        .sum(1, keepdim=True), _yiq(x)[:, 1:]], 1), "BT.709"),
    ("rgb_to_yiq", color.yiq_to_rgb, "inverse transform"),
    ("rgb_to_yiq", lambda x: torch.einsum("ij,bjhw->bihw", torch.tensor(YIQ, dtype=x.dtype), x),
     "mixes devices"),
    ("rgb_to_yiq", lambda x: _yiq(torch.zeros(x.shape, dtype=x.dtype).copy_(x)),
     "on the CPU for inputs on a GPU"),
    ("tv_loss", lambda x: ((x[:, :, 1:, :-1] - x[:, :, :-1, :-1]) ** 2
                           + (x[:, :, :-1, 1:] - x[:, :, :-1, :-1]) ** 2).sum(), "(H-1) x (W-1) grid"),
    ("tv_loss", lambda x: _tv(x) / x.shape[0], "divided by the batch size"),
    ("total_loss", lambda c, s, r, b: r * b * c + s, "beta is not applied to the style loss"),
    ("total_loss", lambda c, s, r, b: b * c + r * s, "the ratio multiplies the style loss"),
    ("total_loss", lambda c, s, r, b: r / b * c + b * s, "alpha = ratio / beta"),
    ("content_loss", lambda f, p: (f - p).norm(), "not half its square"),
    ("content_loss", lambda f, p: torch.tensor(0.5 * ((f - p) ** 2).sum().item()), "has no gradient"),
    ("guided_gram_matrix", lambda f, t: _gram(f * t) / t.sum() ** 2, "Σ(T²)/(ΣT)²"),
    ("guided_gram_matrix", lambda f, t: _gram(f[:1] * t) / (t * t).sum(), "for a batch of 2"),
    ("rgb_to_yiq", lambda x: torch.from_numpy(np.einsum("ij,bjhw->bihw", np.array(YIQ), x.numpy()))
     .to(x.dtype), "no gradient"),
    ("match_luminance", lambda s, c: _match(c, s), "swapped"),
    ("match_luminance", lambda s, c: s - s.mean() + c.mean(), "only the mean is moved"),
    ("match_luminance", lambda s, c: (s - s.mean()) * c.var() / s.var() + c.mean(), "ratio of variances"),
    ("match_luminance", lambda s, c: (s - s.mean()) * s.std() / c.std() + c.mean(), "upside down"),
    ("match_luminance", lambda s, c: (s - s.mean()) * c.std() / s.std(), "mu_C is not added"),
    ("match_luminance", lambda s, c: s.sub_(s.mean()).mul_(c.std() / s.std()).add_(c.mean()),
     "in place"),
]


@pytest.mark.parametrize(("name", "fn", "says"), MISTAKES,
                         ids=[f"{name}-{i}" for i, (name, _, _) in enumerate(MISTAKES)])
def test_each_mistake_is_named(name, fn, says):
    verdict = checks.check(fn, checks.EXERCISES[name])
    assert verdict.status == "wrong", verdict
    assert says in verdict.detail, verdict
    assert "\n" not in str(verdict)


def test_a_scalar_off_by_no_named_factor_is_reported_as_a_difference():
    verdict = checks.check_content_loss(lambda f, p: 0.3 * (f - p).abs().pow(3).sum())
    assert verdict.detail.startswith("values differ from the expected ones (largest relative error")


def test_a_function_whose_flow_depends_on_values_is_not_judged_on_its_device():
    def match(s, c):  # an `if` on a value: fake tensors cannot run it
        scale = c.std() / s.std() if s.std() > 1e-6 else 1.0
        return scale * (s - s.mean()) + c.mean()
    assert checks.check_match_luminance(match).passed


def test_an_unknown_factor_is_reported_as_a_number():
    verdict = checks.check_content_loss(lambda f, p: 1.7 * losses.content_loss_paper(f, p))
    assert verdict.detail == "1.7 times the expected value in every case"


def test_the_verdict_is_one_line_that_jupyter_shows():
    verdict = checks.check_gram_matrix(_gram)
    assert repr(verdict) == str(verdict) == "gram_matrix: correct (4 cases, largest relative error 0)"


def test_something_not_a_function_is_named():
    assert str(checks.check_tv_loss(3)) == "tv_loss: wrong: expected a function, got int"


def test_each_exercise_has_its_check_function():
    for name in checks.EXERCISES:
        check = getattr(checks, f"check_{name}")
        assert check(_stub).name == name
