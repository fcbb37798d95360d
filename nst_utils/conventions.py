"""alpha/beta in other implementations' units: why 1e6, 1e4, 100 and 1e-3 are the same kind of number.

Every implementation of Gatys et al. (2016) minimises ``content_weight * (content loss) + style_weight *
(style loss)``, but each normalises its two losses in its own way: a sum or a mean, a Gram matrix
divided by nothing, by ``M_l`` or by ``N_l M_l``, a style loss divided by the number of layers or
not. So the weights that give one picture differ by orders of magnitude between them, and by a
factor per style layer. This module converts this package's alpha/beta (``TransferConfig.ratio``)
and layer weights ``w_l`` into the weights of another implementation's code and back.

All of them are written here on the same two raw sums of a layer ``l`` with ``N_l`` channels and
``M_l = H_l W_l`` positions (at the generated image's size; ``G = F F^T`` unnormalised, the paper's
eq. 3)::

    S   = sum (F - P)^2          over the content layer's N M entries
    D_l = sum (G - A)^2          over a style layer's N_l^2 Gram entries

A convention's total loss is ``content_weight * c * S + style_weight * sum_l f_l * s_l * D_l``, where
``c`` and ``s_l`` are what its code divides by (below) and ``f_l`` are per-layer factors (all 1 in
its code as published). This package's is ``c = 100 / (2 N M)`` (:data:`~nst_utils.losses.CONTENT_CALIBRATION`
= 100), ``s_l = 1 / (4 N_l^2 M_l^2)``, with ``alpha = ratio * beta`` and ``beta * w_l`` in place of
the weights. Two totals give the same picture when one is a positive multiple of the other: the
same minimum, the same gradient direction at every image. So only ratios matter, and a
convention's ``s_l`` can differ from ours by a factor that depends on the layer (``1 / N_l^2``, for
instance), which no scalar style weight can undo: that is what the factors ``f_l`` are for.

The conventions (each checked against the code cited; ``N``, ``M`` of the layer, ``L`` style layers):

``"paper"``
    Gatys, Ecker & Bethge (CVPR 2016), eqs. 1, 4, 5 and 7: ``c = 1/2`` (a sum), ``s_l = 1 / (4 N_l^2
    M_l^2)``, ``w_l = f_l / L`` (equal weights 1/L: all ``f_l = 1``), ``alpha`` = content_weight,
    ``beta`` = style_weight. Our alpha/beta is the paper's times ``N M / 100`` of the content layer.
    Its defaults here: the headline alpha/beta = 1e-3 read literally, with beta = 1.
``"gatys-code"``
    The authors' PyTorch code, leongatys/PytorchNeuralStyleTransfer, ``NeuralStyleTransfer.ipynb``:
    Gram ``F F^T / M``, ``nn.MSELoss`` (a mean over the ``N^2`` entries), layer weights
    ``1e3 / N_l^2``, content ``nn.MSELoss`` with weight 1: ``c = 1 / (N M)``, ``s_l = 1 / (N_l^4 M_l^2)``
    with the ``1 / N_l^2`` of its weight list counted in ``s_l``, so its list is ``style_weight * f_l /
    N_l^2``, defaults 1e3 and content 1. Not the paper's equal weighting: the factors show it.
``"pytorch-tutorial"``
    pytorch/tutorials, ``advanced_source/neural_style_tutorial.py``: Gram ``F F^T / (N M)``, each
    layer ``F.mse_loss(G, A)`` (mean over ``N^2``), content ``F.mse_loss`` (mean over ``N M``), total
    ``style_weight * sum + content_weight * sum``: ``c = 1 / (N M)``, ``s_l = 1 / (N_l^4 M_l^2)``;
    defaults 1e6 and 1. ``f_l`` multiplies ``sl.loss`` where the style scores are summed.
``"d2l"``
    Dive into Deep Learning, d2l-ai/d2l-en, ``chapter_computer-vision/neural-style.md`` (PyTorch
    tab): Gram ``X X^T / (c h w)``, style and content the mean squared difference, each layer's loss
    times its weight, summed: the same ``c`` and ``s_l`` as the PyTorch tutorial; defaults
    content 1, style 1e4 (total variation 10). ``f_l`` multiplies a layer's entry of ``styles_l``.
``"neural-style"``
    Justin Johnson's Torch code, jcjohnson/neural-style, ``neural_style.lua``: Gram divided by
    ``input:nElement()`` (``N M``), ``nn.MSECriterion`` (a mean) times the layer's strength
    ``style_weight``; content ``nn.MSECriterion`` times ``content_weight``: the PyTorch tutorial's
    ``c`` and ``s_l`` again; defaults content 5, style 100 (tv 1e-3). ``f_l`` multiplies the
    strength given to a layer's ``nn.StyleLoss``.
``"tensorflow-tutorial"``
    tensorflow/docs, ``site/en/tutorials/generative/style_transfer.ipynb``: Gram ``einsum / (H_l
    W_l)``, style the sum over layers of the mean squared difference times ``style_weight / L``,
    content the mean times ``content_weight`` / (number of content layers, here 1): ``c = 1 / (N M)``,
    ``s_l = 1 / (L N_l^2 M_l^2)``, the paper's relative weighting (all ``f_l = 1``); defaults style
    1e-2, content 1e4. ``f_l`` multiplies a layer's mean inside the sum.
``"keras"``
    keras-team/keras-io, ``examples/generative/neural_style_transfer.py``: unnormalised Gram,
    each layer ``sum (S - C)^2 / (4 * 3^2 * (rows * cols)^2)`` with the constant ``channels = 3`` and
    the generated *image's* pixel count ``rows * cols`` (not the layer's ``N_l``, ``M_l``: a quirk,
    reproduced), added as ``style_weight / L`` times it; content the plain sum (no 1/2) times
    ``content_weight``: ``c = 1``, ``s_l = 1 / (36 L (H W)^2)``; defaults style 1e-6, content 2.5e-8
    (tv 1e-6). ``f_l`` multiplies a layer's ``sl``.

The layer names are this package's. The others tap: the PyTorch tutorial pre-ReLU convolutions
(``conv_4`` is ``conv2_2``); d2l torchvision's modules 0, 5, 10, 19, 28 and 25 (``conv1_1`` ...
``conv5_1``, ``conv4_2``), which torchvision's in-place ReLU rectifies after they are stored, except
the last module kept, ``conv5_1``; Keras and TensorFlow ``block5_conv2`` etc., convolutions with
their ReLU (``relu5_2``); neural-style and the authors' code the ReLUs.

What carries and what does not: a conversion matches the *loss normalisations* on the *same
features*. The implementations also use other networks and input scalings (torchvision's VGG-19 on
ImageNet-standardised ``[0, 1]`` inputs; Keras' VGG-19 and the authors' own ``vgg_conv.pth`` on
0-255 BGR inputs minus the mean pixel; neural-style's Caffe VGG-19 on 0-256; this package the
*normalised* Caffe network), and feature magnitudes scale ``S`` and ``D_l`` differently (``D_l``
has four powers of the features, ``S`` two). So the numbers carry exactly only on the same network
and inputs; across networks they are the place to start, not the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from .config import PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS, check_choice
from .layers import LAYER_CHANNELS, check_layers
from .losses import CONTENT_CALIBRATION
from .masks import feature_shape

#: Content normalisation ``c(N, M)`` and style normalisation ``s(N, M, L, pixels)`` of a convention.
ContentNorm = Callable[[int, int], float]
StyleNorm = Callable[[int, int, int, int], float]


@dataclass(frozen=True)
class _Convention:
    content_weight: float  # its code's defaults (the paper: alpha/beta = 1e-3 literally, beta = 1)
    style_weight: float
    content: ContentNorm  # what S = sum (F - P)^2 is multiplied by in its code, before the weight
    style: StyleNorm  # what D_l = sum (G - A)^2 is multiplied by, before style_weight * f_l


def _mean_content(n: int, m: int) -> float:
    return 1.0 / (n * m)


def _mse_of_gram_by_nm(n: int, m: int, layers: int, pixels: int) -> float:
    return 1.0 / (n**4 * m**2)  # Gram / (N M), then a mean over its N^2 entries


_OURS = _Convention(
    1.0, 1.0,
    lambda n, m: CONTENT_CALIBRATION / (2 * n * m),
    lambda n, m, layers, pixels: 1.0 / (4 * n**2 * m**2),
)
_SPECS: dict[str, _Convention] = {
    "paper": _Convention(1e-3, 1.0, lambda n, m: 0.5,
                         lambda n, m, layers, pixels: 1.0 / (4 * layers * n**2 * m**2)),
    "gatys-code": _Convention(1.0, 1e3, _mean_content, _mse_of_gram_by_nm),
    "pytorch-tutorial": _Convention(1.0, 1e6, _mean_content, _mse_of_gram_by_nm),
    "d2l": _Convention(1.0, 1e4, _mean_content, _mse_of_gram_by_nm),
    "neural-style": _Convention(5.0, 100.0, _mean_content, _mse_of_gram_by_nm),
    "tensorflow-tutorial": _Convention(1e4, 1e-2, _mean_content,
                                       lambda n, m, layers, pixels: 1.0 / (layers * n**2 * m**2)),
    "keras": _Convention(2.5e-8, 1e-6, lambda n, m: 1.0,
                         lambda n, m, layers, pixels: 1.0 / (4 * 3**2 * pixels**2 * layers)),
}
#: The implementations :func:`to_convention` and :func:`from_convention` know (module docstring).
CONVENTIONS: tuple[str, ...] = tuple(_SPECS)


@dataclass(frozen=True)
class Weights:
    """The weights of one run in ``convention``'s code (see the module docstring for each).

    ``content_weight`` multiplies its content loss and ``style_weight`` its style loss, each as
    its code computes them (``alpha`` and ``beta`` for ``"paper"``). ``layer_factors[l]`` multiplies
    style layer ``l``'s term inside the style loss, where its code has none (so 1 is its code as
    published; ``"paper"``: ``w_l = f_l / L``; ``"gatys-code"``: its weight list becomes
    ``style_weight * f_l / N_l^2``). :func:`to_convention` scales them to mean 1, so that
    ``style_weight`` is the weight of an average layer.
    """

    convention: str
    content_weight: float
    style_weight: float
    layer_factors: dict[str, float]


def default_weights(convention: str, style_layers: Sequence[str] = PAPER_STYLE_LAYERS) -> Weights:
    """``convention``'s own default weights on ``style_layers``, as its code runs them (factors 1)."""
    spec = _spec(convention)
    layers = _style_layers(style_layers)
    return Weights(convention, spec.content_weight, spec.style_weight, dict.fromkeys(layers, 1.0))


def to_convention(
    convention: str,
    ratio: float,
    *,
    size: int | tuple[int, int],
    content_layer: str,
    style_layers: Sequence[str],
    layer_weights: Mapping[str, float] | None = None,
    style_weight: float | None = None,
) -> Weights:
    """Our alpha/beta ``ratio`` and ``layer_weights`` (``w_l``; default equal) as ``convention``'s weights.

    ``size`` is the generated image's ``(H, W)`` (an int: square), which sets each layer's ``M_l``.
    ``style_weight`` defaults to the convention's own; the content weight and the factors follow.
    Its total loss is then a positive multiple of ours: the same gradient direction everywhere.
    """
    spec = _spec(convention)
    if not ratio > 0:
        raise ValueError(f"ratio (alpha/beta) must be positive, got {ratio}")
    beta = spec.style_weight if style_weight is None else style_weight
    if not beta > 0:
        raise ValueError(f"style_weight must be positive, got {beta}")
    layers = _style_layers(style_layers)
    weights = _check_weights(layers, layer_weights)
    content_rel, style_rel = _relative(spec, _shape(size), content_layer, layers)
    raw = {name: weights[name] * style_rel[name] for name in layers}
    mean = sum(raw.values()) / len(raw)
    factors = {name: value / mean for name, value in raw.items()}
    return Weights(convention, beta * ratio * content_rel / mean, beta, factors)


def from_convention(
    weights: Weights, *, size: int | tuple[int, int], content_layer: str
) -> tuple[float, dict[str, float]]:
    """``(ratio, layer_weights)`` in this package's units for ``weights`` in their convention's:
    alpha/beta and the ``w_l`` (summing to one) on the style layers ``weights.layer_factors`` names.

    ``size`` and ``content_layer`` as for :func:`to_convention`. A ``to_convention`` with weights
    summing to ``s`` comes back as ``ratio / s`` and ``w_l / s``: the same loss with beta ``s`` times
    larger.
    """
    spec = _spec(weights.convention)
    layers = _style_layers(weights.layer_factors)
    factors = _check_weights(layers, weights.layer_factors, what="layer factor")
    if not (weights.content_weight > 0 and weights.style_weight > 0):
        raise ValueError(f"weights must be positive, got content {weights.content_weight:g}, "
                         f"style {weights.style_weight:g}")
    content_rel, style_rel = _relative(spec, _shape(size), content_layer, layers)
    ours = {name: factors[name] / style_rel[name] for name in layers}  # proportional to beta w_l
    total = sum(ours.values())
    ratio = weights.content_weight / content_rel / (weights.style_weight * total)
    return ratio, {name: value / total for name, value in ours.items()}


#: The alpha/beta of the paper's Fig. 3 by panel (CVPR caption; notebook 03 shows B, C and D).
FIG3_RATIOS: dict[str, float] = {"B": 1e-3, "C": 8e-4, "D": 5e-3, "E": 5e-4, "F": 5e-4}
#: Notebook 03's Fig. 3 size: the Neckarfront photograph at 512 px, ``(H, W)``.
FIG3_SHAPE: tuple[int, int] = (384, 512)


def fig3_table(size: int | tuple[int, int] = FIG3_SHAPE) -> list[dict[str, object]]:
    """The paper's Fig. 3 ratios in every convention, at ``size``, on the paper's layers (content
    relu4_2, style relu1_1 ... relu5_1 with equal weights): one row per ratio and convention.

    Each row: ``panels`` (e.g. ``"E, F"``), ``ratio`` (ours), ``convention``, ``style_weight`` (its
    default), ``content_weight`` (what goes with it) and ``layer_factors`` (a tuple in layer order).
    """
    panels: dict[float, list[str]] = {}
    for panel, ratio in FIG3_RATIOS.items():
        panels.setdefault(ratio, []).append(panel)
    rows: list[dict[str, object]] = []
    for ratio, names in panels.items():
        for convention in CONVENTIONS:
            w = to_convention(convention, ratio, size=size, content_layer=PAPER_CONTENT_LAYERS[0],
                              style_layers=PAPER_STYLE_LAYERS)
            rows.append({"panels": ", ".join(names), "ratio": ratio, "convention": convention,
                         "style_weight": w.style_weight, "content_weight": w.content_weight,
                         "layer_factors": tuple(w.layer_factors.values())})
    return rows


def _spec(convention: str) -> _Convention:
    check_choice(convention, CONVENTIONS, "convention")
    return _SPECS[convention]


def _shape(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else size
    return int(h), int(w)


def _style_layers(layers: Iterable[str]) -> tuple[str, ...]:
    out = check_layers(layers, "style layer")
    if not out:
        raise ValueError("no style layers given")
    return out


def _check_weights(
    layers: tuple[str, ...], weights: Mapping[str, float] | None, what: str = "layer weight"
) -> dict[str, float]:
    if weights is None:
        return dict.fromkeys(layers, 1.0 / len(layers))
    if set(weights) != set(layers):
        raise ValueError(f"{what}s are for {', '.join(weights)}; expected {', '.join(layers)}")
    values = {name: float(weights[name]) for name in layers}
    if any(not v >= 0 for v in values.values()) or not any(values.values()):
        raise ValueError(f"{what}s must be non-negative and not all zero, got {values}")
    return values


def _relative(
    spec: _Convention, shape: tuple[int, int], content_layer: str, style_layers: tuple[str, ...]
) -> tuple[float, dict[str, float]]:
    """Our normalisations over the convention's: ``c_ours / c`` and ``{l: s_l,ours / s_l}``."""
    (content_layer,) = check_layers([content_layer], "content layer")
    pixels = shape[0] * shape[1]
    n, m = _size_of(content_layer, shape)
    content = _OURS.content(n, m) / spec.content(n, m)
    style = {}
    for name in style_layers:
        args = (*_size_of(name, shape), len(style_layers), pixels)
        style[name] = _OURS.style(*args) / spec.style(*args)
    return content, style


def _size_of(layer: str, shape: tuple[int, int]) -> tuple[int, int]:
    """``(N_l, M_l)`` of ``layer`` for an image of ``shape``."""
    h, w = feature_shape(shape, layer)
    if h < 1 or w < 1:
        raise ValueError(f"an image of {shape[0]} x {shape[1]} px is too small for layer {layer}")
    return LAYER_CHANNELS[layer], h * w
