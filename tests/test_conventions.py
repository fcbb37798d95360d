"""Tests for nst_utils.conventions: our alpha/beta and w_l as the weights of other implementations.

The check that matters: each implementation's total loss, written out here as its code computes
it (its own Gram normalisation, means or sums, division by the number of layers), with the
converted weights, is a positive multiple of this package's loss on the same features, so its
gradient with respect to the image points the same way. The features are the paper's network's
(normalised Caffe VGG-19, average pooling) in float64, on seeded random images of 50 x 66 px: not
multiples of 16, so every layer's map size is rounded down."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from helpers import rand
from torch import Tensor

from nst_utils.config import PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS
from nst_utils.conventions import (
    CONVENTIONS,
    FIG3_RATIOS,
    Weights,
    default_weights,
    fig3_table,
    from_convention,
    to_convention,
)
from nst_utils.features import VGG19Features
from nst_utils.layers import LAYER_CHANNELS
from nst_utils.losses import content_loss, gram_matrix, style_loss

SHAPE = (50, 66)  # (H, W) of every image
CONTENT = PAPER_CONTENT_LAYERS[0]
STYLE = PAPER_STYLE_LAYERS
#: Unequal w_l summing to one, so that the conversion of the layer weights is exercised too.
W = {"relu1_1": 0.1, "relu2_1": 0.3, "relu3_1": 0.2, "relu4_1": 0.25, "relu5_1": 0.15}
#: Our alpha/beta: measured on these images, content and style gradients are of the same order.
RATIO = 1e-2

rand64 = partial(rand, dtype=torch.float64)
Features = dict[str, Tensor]


@pytest.fixture(scope="module")
def extract() -> Callable[[Tensor], Features]:
    """The paper's network in float64, up to relu5_1 (``VGG19Features`` returns float32)."""
    net = VGG19Features("caffe", "avg", last_layer="relu5_1").double()
    wanted = {*STYLE, CONTENT}

    def features(image: Tensor) -> Features:
        x, out = net.preprocess(image), {}
        for name, module in zip(net.layer_names, net.body):
            x = module(x)
            if name in wanted:
                out[name] = x
        return out

    return features


@pytest.fixture(scope="module")
def targets(extract: Callable[[Tensor], Features]) -> tuple[Features, Features]:
    """Features of the photograph p and of the painting a (seeded noise images)."""
    with torch.no_grad():
        return extract(rand64(1, 3, *SHAPE, seed=1)), extract(rand64(1, 3, *SHAPE, seed=2))


# --- each implementation's loss, as its code computes it ------------------------------------------


def _paper(w: Weights, x: Features, p: Features, a: Features) -> Tensor:
    """Eqs. 1, 4, 5, 7: 1/2 sum; E_l with 1/(4 N^2 M^2); w_l = f_l / L; alpha L_c + beta L_s."""
    content = 0.5 * (x[CONTENT] - p[CONTENT]).pow(2).sum()
    style = 0
    for name, f in w.layer_factors.items():
        _, n, h, wd = x[name].shape
        e = (_gram(x[name]) - _gram(a[name])).pow(2).sum() / (4 * n**2 * (h * wd) ** 2)
        style = style + f / len(w.layer_factors) * e
    return w.content_weight * content + w.style_weight * style


def _gram(f: Tensor) -> Tensor:
    flat = f.flatten(2)
    return flat @ flat.transpose(1, 2)


def _gatys_code(w: Weights, x: Features, p: Features, a: Features) -> Tensor:
    """GramMatrix divides by h*w; GramMSELoss and the content loss are nn.MSELoss (means); the
    weight list is 1e3 / n**2 per layer (here style_weight * f_l / n**2), content 1."""
    def gram(f: Tensor) -> Tensor:
        b, c, h, wd = f.size()
        flat = f.view(b, c, h * wd)
        return torch.bmm(flat, flat.transpose(1, 2)) / (h * wd)

    losses = [w.style_weight * f / LAYER_CHANNELS[name] ** 2 * F.mse_loss(gram(x[name]), gram(a[name]))
              for name, f in w.layer_factors.items()]
    return sum(losses) + w.content_weight * F.mse_loss(x[CONTENT], p[CONTENT])


def _tutorial_gram(f: Tensor) -> Tensor:
    a, b, c, d = f.size()
    flat = f.view(a * b, c * d)
    return torch.mm(flat, flat.t()) / (a * b * c * d)


def _pytorch_tutorial(w: Weights, x: Features, p: Features, a: Features) -> Tensor:
    """Gram / (a*b*c*d), F.mse_loss per layer, summed, times style_weight; content F.mse_loss."""
    style_score = sum(f * F.mse_loss(_tutorial_gram(x[name]), _tutorial_gram(a[name]))
                      for name, f in w.layer_factors.items())
    return style_score * w.style_weight + F.mse_loss(x[CONTENT], p[CONTENT]) * w.content_weight


def _d2l(w: Weights, x: Features, p: Features, a: Features) -> Tensor:
    """gram = X X^T / (num_channels * n); square(...).mean() for style and content, each times its weight."""
    def gram(t: Tensor) -> Tensor:
        channels, n = t.shape[1], t.numel() // t.shape[1]
        t = t.reshape((channels, n))
        return torch.matmul(t, t.T) / (channels * n)

    styles = [torch.square(gram(x[name]) - gram(a[name])).mean() * w.style_weight * f
              for name, f in w.layer_factors.items()]
    contents = [torch.square(x[CONTENT] - p[CONTENT]).mean() * w.content_weight]
    return sum(styles + contents)


def _neural_style(w: Weights, x: Features, p: Features, a: Features) -> Tensor:
    """Gram of the (C, H, W) input divided by its nElement; MSECriterion times each module's strength."""
    def gram(t: Tensor) -> Tensor:
        flat = t[0].reshape(t.shape[1], -1)
        return flat @ flat.t() / t[0].numel()

    styles = [(w.style_weight * f) * F.mse_loss(gram(x[name]), gram(a[name]))
              for name, f in w.layer_factors.items()]
    return F.mse_loss(x[CONTENT][0], p[CONTENT][0]) * w.content_weight + sum(styles)


def _tensorflow_tutorial(w: Weights, x: Features, p: Features, a: Features) -> Tensor:
    """Channels-last features; einsum Gram / num_locations; sum of means times style_weight / L,
    content mean times content_weight / 1."""
    def gram(t: Tensor) -> Tensor:
        t = t.permute(0, 2, 3, 1)  # TensorFlow's (b, i, j, c)
        return torch.einsum("bijc,bijd->bcd", t, t) / (t.shape[1] * t.shape[2])

    style = sum(f * torch.mean((gram(x[name]) - gram(a[name])) ** 2) for name, f in w.layer_factors.items())
    style = style * w.style_weight / len(w.layer_factors)
    content = torch.mean((x[CONTENT] - p[CONTENT]) ** 2) * w.content_weight / 1
    return style + content


def _keras(w: Weights, x: Features, p: Features, a: Features) -> Tensor:
    """Unnormalised Gram of (H, W, C) features; sum (S - C)^2 / (4 * 3^2 * (rows * cols)^2) with the
    image's rows * cols; loss += style_weight / L * sl; content sum of squares times content_weight."""
    rows, cols = SHAPE

    def gram(t: Tensor) -> Tensor:
        t = t[0].permute(1, 2, 0).permute(2, 0, 1)  # Keras' (H, W, C), then its transpose (2, 0, 1)
        flat = t.reshape(t.shape[0], -1)
        return flat @ flat.t()

    loss = w.content_weight * torch.sum(torch.square(x[CONTENT] - p[CONTENT]))
    for name, f in w.layer_factors.items():
        sl = torch.sum(torch.square(gram(a[name]) - gram(x[name]))) / (4.0 * 3**2 * (rows * cols) ** 2)
        loss = loss + (w.style_weight / len(w.layer_factors)) * f * sl
    return loss


THEIR_LOSS: dict[str, Callable[[Weights, Features, Features, Features], Tensor]] = {
    "paper": _paper, "gatys-code": _gatys_code, "pytorch-tutorial": _pytorch_tutorial, "d2l": _d2l,
    "neural-style": _neural_style, "tensorflow-tutorial": _tensorflow_tutorial, "keras": _keras,
}


def test_every_convention_has_its_loss_here() -> None:
    assert set(THEIR_LOSS) == set(CONVENTIONS)


def _ours(x: Features, p: Features, a: Features, ratio: float, beta: float = 2.0) -> Tensor:
    grams = {name: gram_matrix(a[name]) for name in STYLE}
    return ratio * beta * content_loss(x[CONTENT], p[CONTENT]) + beta * style_loss(x, grams, W)


def _gradient(loss: Tensor, image: Tensor) -> Tensor:
    (grad,) = torch.autograd.grad(loss, image, retain_graph=True)
    return grad.flatten()


@pytest.fixture(scope="module")
def generated(extract: Callable[[Tensor], Features]) -> tuple[Tensor, Features, Features]:
    """The generated image x (requires grad) with its features, and a second image's features."""
    x = rand64(1, 3, *SHAPE, seed=3).requires_grad_()
    with torch.no_grad():
        other = extract(rand64(1, 3, *SHAPE, seed=4))
    return x, extract(x), other


# --- (1) the converted weights give our loss, up to a positive factor -------------------------------


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_converted_loss_is_a_multiple_of_ours(convention: str, targets, generated) -> None:
    (p, a), (x, fx, f2) = targets, generated
    weights = to_convention(convention, RATIO, size=SHAPE, content_layer=CONTENT, style_layers=STYLE,
                            layer_weights=W)
    theirs, ours = THEIR_LOSS[convention](weights, fx, p, a), _ours(fx, p, a, RATIO)
    cosine = F.cosine_similarity(_gradient(theirs, x), _gradient(ours, x), dim=0)
    assert float(cosine) > 1 - 1e-6
    # The same positive factor at another image: the two losses are proportional, not just parallel here.
    factor = float(theirs.detach() / ours.detach())
    with torch.no_grad():
        other = float(THEIR_LOSS[convention](weights, f2, p, a) / _ours(f2, p, a, RATIO))
    assert factor > 0 and other == pytest.approx(factor, rel=1e-9)


def test_both_terms_steer_the_gradient(targets, generated) -> None:
    """Guards the check above: at RATIO neither term's gradient is negligible, so a wrong content
    weight or wrong style factors would turn the direction."""
    (p, a), (x, fx, _) = targets, generated
    content = _gradient(RATIO * content_loss(fx[CONTENT], p[CONTENT]), x).norm()
    style = _gradient(style_loss(fx, {n: gram_matrix(a[n]) for n in STYLE}, W), x).norm()
    assert 0.1 < float(content / style) < 10


# --- (2) the check can fail --------------------------------------------------------------------------


@pytest.mark.parametrize("convention", ["pytorch-tutorial", "keras"])
def test_without_the_layer_factors_the_direction_is_wrong(convention: str, targets, generated) -> None:
    """The converted content and style weights with every factor 1 (the implementation's code as
    published): its per-layer normalisation weighs the layers unlike ours, and no scalar fixes it."""
    (p, a), (x, fx, _) = targets, generated
    weights = to_convention(convention, RATIO, size=SHAPE, content_layer=CONTENT, style_layers=STYLE,
                            layer_weights=W)
    plain = Weights(convention, weights.content_weight, weights.style_weight, dict.fromkeys(STYLE, 1.0))
    cosine = F.cosine_similarity(_gradient(THEIR_LOSS[convention](plain, fx, p, a), x),
                                 _gradient(_ours(fx, p, a, RATIO), x), dim=0)
    assert float(cosine) < 0.9


def test_the_defaults_are_another_objective(targets, generated) -> None:
    """The PyTorch tutorial's own weights (1, 1e6) on these features are not our RATIO."""
    (p, a), (x, fx, _) = targets, generated
    theirs = _pytorch_tutorial(default_weights("pytorch-tutorial"), fx, p, a)
    cosine = F.cosine_similarity(_gradient(theirs, x), _gradient(_ours(fx, p, a, RATIO), x), dim=0)
    assert float(cosine) < 0.9


# --- (3) round trip -----------------------------------------------------------------------------------


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_round_trip(convention: str) -> None:
    size = (384, 512)
    weights = to_convention(convention, 8e-4, size=size, content_layer=CONTENT, style_layers=STYLE,
                            layer_weights=W, style_weight=3.0)
    assert weights.style_weight == 3.0
    assert sum(weights.layer_factors.values()) == pytest.approx(len(STYLE))  # mean 1
    ratio, layer_weights = from_convention(weights, size=size, content_layer=CONTENT)
    assert ratio == pytest.approx(8e-4, rel=1e-12)
    assert layer_weights == pytest.approx(W, rel=1e-12)


def test_round_trip_of_weights_not_summing_to_one() -> None:
    """w_l summing to s: the same loss as ratio / s with w_l / s (and s times beta), which comes back."""
    doubled = {name: 2 * v for name, v in W.items()}
    weights = to_convention("d2l", 1e-3, size=256, content_layer=CONTENT, style_layers=STYLE,
                            layer_weights=doubled)
    ratio, layer_weights = from_convention(weights, size=256, content_layer=CONTENT)
    assert ratio == pytest.approx(5e-4) and layer_weights == pytest.approx(W)


def test_the_paper_in_its_own_units() -> None:
    """Notebook 03: the paper's alpha/beta = ours x 100 / (N_l M_l) of the content layer; equal w_l
    are its equal weights (factors 1). The TensorFlow tutorial weighs the layers as the paper does."""
    weights = to_convention("paper", 1e-3, size=(384, 512), content_layer=CONTENT, style_layers=STYLE)
    assert weights.style_weight == 1.0
    assert weights.content_weight == pytest.approx(1e-3 * 100 / (512 * 48 * 64))
    for convention in ("paper", "tensorflow-tutorial"):
        factors = to_convention(convention, 1e-3, size=64, content_layer=CONTENT,
                                style_layers=STYLE).layer_factors
        assert factors == pytest.approx(dict.fromkeys(STYLE, 1.0))
    # The PyTorch tutorial's mean-squared Gram of F F^T / (N M) needs the deep layers N_l^2 heavier.
    factors = to_convention("pytorch-tutorial", 1e-3, size=64, content_layer=CONTENT,
                            style_layers=STYLE).layer_factors
    assert factors["relu5_1"] / factors["relu1_1"] == pytest.approx((512 / 64) ** 2)


# --- (4) errors ---------------------------------------------------------------------------------------


def test_unknown_convention() -> None:
    with pytest.raises(ValueError, match="unknown convention 'tutorial'; expected one of paper, "):
        to_convention("tutorial", 1e-3, size=64, content_layer=CONTENT, style_layers=STYLE)
    with pytest.raises(ValueError, match="unknown convention 'caffe'"):
        from_convention(Weights("caffe", 1.0, 1.0, {"relu1_1": 1.0}), size=64, content_layer=CONTENT)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"content_layer": "conv_4"}, "unknown content layer 'conv_4'"),
    ({"style_layers": ("relu1_1", "block2_conv1")}, "unknown style layer 'block2_conv1'"),
    ({"style_layers": ()}, "no style layers given"),
    ({"layer_weights": {"relu1_1": 1.0}}, "layer weights are for relu1_1; expected relu1_1, relu2_1"),
    ({"size": 8}, "8 x 8 px is too small for layer relu5_1"),
    ({"ratio": 0.0}, r"ratio \(alpha/beta\) must be positive"),
])
def test_bad_arguments(kwargs: dict, message: str) -> None:
    arguments = {"ratio": 1e-3, "size": 64, "content_layer": CONTENT, "style_layers": STYLE, **kwargs}
    with pytest.raises(ValueError, match=message):
        to_convention("keras", arguments.pop("ratio"), **arguments)


def test_bad_weights_to_convert_back() -> None:
    with pytest.raises(ValueError, match="unknown style layer 'conv_1'"):
        from_convention(Weights("d2l", 1.0, 1e4, {"conv_1": 1.0}), size=64, content_layer=CONTENT)
    with pytest.raises(ValueError, match="layer factors must be non-negative"):
        from_convention(Weights("d2l", 1.0, 1e4, {"relu1_1": -1.0}), size=64, content_layer=CONTENT)


# --- (5) the table for notebook 03 ----------------------------------------------------------------------


def test_fig3_table() -> None:
    rows = fig3_table()
    ratios = sorted(set(FIG3_RATIOS.values()))
    assert len(rows) == len(ratios) * len(CONVENTIONS)
    assert {(r["ratio"], r["convention"]) for r in rows} == {(q, c) for q in ratios for c in CONVENTIONS}
    assert {r["panels"] for r in rows} == {"B", "C", "D", "E, F"}
    for row in rows:
        numbers = [row["ratio"], row["style_weight"], row["content_weight"], *row["layer_factors"]]
        assert len(row["layer_factors"]) == len(STYLE)
        assert all(math.isfinite(v) and v > 0 for v in numbers), row
        assert row["style_weight"] == default_weights(row["convention"]).style_weight
