"""Every default in one place: the CLI, the widgets, the recipes and the docs read them here.

:data:`PAPER` is Gatys, Ecker & Bethge (CVPR 2016) as published: content on layer 4_2, style on
1_1 ... 5_1 with equal weights 1/5, alpha/beta = 1e-3 (Fig. 3 B), white-noise initialisation,
L-BFGS for every step asked for at one size, average pooling ("slightly more appealing results"),
the normalised Caffe VGG-19. The notebooks rebuild the paper with it.

:data:`DEFAULT` (what ``TransferConfig()`` gives, and what ``nst transfer``, :func:`nst_utils.transfer`
and the panel use) is the same objective on a schedule that reaches the finished picture sooner
(README, "The default schedule"): it starts from the photograph, which the paper's Fig. 6 finds
changes the details and not the kind of result, optimises coarse to fine as Gatys et al. (2017) do
for large images, and ends each level once its loss has stopped improving.

Rectified taps (``relu4_2``, not ``conv4_2``): the paper names layers after their
convolutions, but its Caffe implementation computed ReLU in place, so the blob called
``conv4_2`` held the rectified response; the network normalisation (mean *activation* one)
is defined on rectified responses too. Pre-ReLU taps give every layer a larger style term, the
deeper layers most, which shifts the balance between layers (the measurements: the README,
"Which tap is "conv4_2""). ``conv*`` taps remain available.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .layers import check_layers

OPTIMIZERS: tuple[str, ...] = ("lbfgs", "adam", "lbfgs-scipy")
INITS: tuple[str, ...] = ("content", "style", "noise")
#: Where the VGG-19's weights come from, ``network_weights`` (see :mod:`nst_utils.features`).
WEIGHT_SOURCES: tuple[str, ...] = ("caffe", "torchvision", "random")
POOLINGS: tuple[str, ...] = ("max", "avg")
#: Machine settings: "auto" lets :mod:`nst_utils.engine` choose for the hardware at hand.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")
#: How the 3x3 convolutions are computed (see :mod:`nst_utils.engine`).
CONV_ALGORITHMS: tuple[str, ...] = ("auto", "direct", "winograd")
STYLE_SCALES: tuple[str, ...] = ("content", "own")
#: How the network's convolutions pad their borders (the paper's network: zeros).
PADDINGS: tuple[str, ...] = ("zeros", "reflect", "circular")
#: Ways to keep the content's colours (see :mod:`nst_utils.color`).
COLOR_METHODS: tuple[str, ...] = ("none", "luminance", "histogram")
#: Bases of the colour transform of histogram matching (see :mod:`nst_utils.color`).
COLOR_BASES: tuple[str, ...] = ("symmetric", "cholesky")
#: How region masks are carried to each layer's resolution (see :mod:`nst_utils.masks`).
MASK_MODES: tuple[str, ...] = ("inside", "simple")

PAPER_CONTENT_LAYERS: tuple[str, ...] = ("relu4_2",)
PAPER_STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
#: Fig. 1's content row, shallow to deep.
FIG1_CONTENT_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")
#: Fig. 1's style row: growing sets relu1_1; + relu2_1; ...; + relu5_1.
FIG1_STYLE_LAYER_SETS: tuple[tuple[str, ...], ...] = tuple(
    PAPER_STYLE_LAYERS[: i + 1] for i in range(len(PAPER_STYLE_LAYERS))
)
#: The slider's and the trade-off grid's range of alpha/beta.
RATIO_RANGE: tuple[float, float] = (1e-5, 1e-1)

#: The default schedule (README, "The default schedule"): coarse levels down to this side ...
PYRAMID_MIN = 512
#: ... or, from white noise, down to this one: there the coarse levels lay out the large shapes.
PYRAMID_MIN_NOISE = 128
#: ... each run for at most this many steps; every level stops early once the loss has improved by
#: less than PLATEAU_TOL (relative) over PLATEAU_WINDOW steps.
PYRAMID_STEPS = 150
PLATEAU_TOL = 0.03
PLATEAU_WINDOW = 10

#: Smallest image side the network accepts: five 2x2 poolings need at least 32 pixels.
MIN_SIZE = 32
#: Largest image side accepted by default (memory; see the memory estimate).
MAX_SIZE = 4096


@dataclass(frozen=True)
class TransferConfig:
    """One style-transfer run. ``ratio`` is alpha/beta and ``style_weight`` is beta (see ``losses``).

    The defaults are :data:`DEFAULT`'s; :data:`PAPER` is the paper's own schedule."""

    size: int = 512
    steps: int = 500
    ratio: float = 1e-3
    style_weight: float = 1.0
    content_layers: tuple[str, ...] = PAPER_CONTENT_LAYERS
    style_layers: tuple[str, ...] = PAPER_STYLE_LAYERS
    #: Per-layer w_l; empty means equal weights 1/len(style_layers), as in the paper.
    style_layer_weights: tuple[float, ...] = ()
    tv_weight: float = 0.0
    #: The start: "content" (the photograph), "style", "noise" (the paper's white noise) or a path.
    init: str = "content"
    optimizer: str = "lbfgs"
    #: L-BFGS history (pairs kept); Adam's learning rate in [0, 1] pixel units.
    lbfgs_history: int = 20
    adam_lr: float = 0.02
    pooling: str = "avg"
    #: Where the network's weights come from (WEIGHT_SOURCES); not the loss weights above.
    network_weights: str = "caffe"
    seed: int = 0
    device: str = "auto"
    precision: str = "float32"
    #: "auto": Winograd F(4x4, 3x3) for the deep layers on a CPU in float32, else direct.
    conv_algorithm: str = "auto"
    #: Style image resized to the content's size (the paper) or kept at its own scale.
    style_scale: str = "content"
    #: Coarse-to-fine (Gatys et al. 2017): the longest sides to optimise at first, increasing,
    #: each below ``size``; each level starts from the previous one's result upsampled. "auto":
    #: chosen from ``size`` and ``init`` (:func:`auto_pyramid`); empty: one level at ``size``,
    #: as in the paper.
    pyramid: tuple[int, ...] | str = "auto"
    #: The most steps at each level below ``size`` (``steps`` caps the last level).
    pyramid_steps: int = PYRAMID_STEPS
    #: The stopping rule at every level: stop once the loss has improved by less than
    #: ``plateau_tol`` (relative) over the last ``plateau_window`` steps; 0 never stops early.
    plateau_tol: float = PLATEAU_TOL
    plateau_window: int = PLATEAU_WINDOW
    #: Keep the content's colours (Gatys et al. 2017): "luminance" transfers the luminance only,
    #: "histogram" first gives the style image the content's colour mean and covariance.
    preserve_color: str = "none"
    color_basis: str = "symmetric"
    #: Weights of several style images mixed into one target (empty: equal weights).
    style_blend: tuple[float, ...] = ()
    #: Spatial control: how each region's mask reaches each layer ("inside": eroded).
    mask_mode: str = "inside"
    #: Border handling of the network's convolutions; "circular" makes textures that tile.
    padding: str = "zeros"

    def __post_init__(self) -> None:
        validate(self)

    @property
    def content_weight(self) -> float:
        """alpha = ratio * beta."""
        return self.ratio * self.style_weight

    def layer_weights(self) -> dict[str, float]:
        """``{style layer: w_l}``; equal weights summing to one by default."""
        if not self.style_layer_weights:
            return {name: 1.0 / len(self.style_layers) for name in self.style_layers}
        return dict(zip(self.style_layers, self.style_layer_weights))

    def levels(self) -> list[tuple[int, int]]:
        """``(longest side, most steps)`` of each coarse-to-fine level, ending with ``(size, steps)``."""
        sizes = auto_pyramid(self.size, self.init) if self.pyramid == "auto" else self.pyramid
        return [(s, self.pyramid_steps) for s in sizes] + [(self.size, self.steps)]

    def replace(self, **changes: Any) -> TransferConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_choice(value: str, options: tuple[str, ...], name: str) -> None:
    """``ValueError`` naming the parameter ``name`` when ``value`` is not one of ``options``."""
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(options)}")


def validate(cfg: TransferConfig) -> None:
    """Raise ``ValueError`` with one clear line for any inconsistent setting."""
    if not MIN_SIZE <= cfg.size <= MAX_SIZE:
        raise ValueError(f"size {cfg.size} is out of range; expected {MIN_SIZE}..{MAX_SIZE} pixels")
    if cfg.steps < 1:
        raise ValueError(f"steps must be at least 1, got {cfg.steps}")
    if not cfg.ratio > 0:
        raise ValueError(f"ratio (alpha/beta) must be positive, got {cfg.ratio}")
    if not cfg.style_weight > 0:
        raise ValueError(f"style weight (beta) must be positive, got {cfg.style_weight}")
    object.__setattr__(cfg, "content_layers", check_layers(cfg.content_layers, "content layer"))
    object.__setattr__(cfg, "style_layers", check_layers(cfg.style_layers, "style layer"))
    if not cfg.style_layers and not cfg.content_layers:
        raise ValueError("no layers: give content layers, style layers or both")
    weights = tuple(float(w) for w in cfg.style_layer_weights)
    object.__setattr__(cfg, "style_layer_weights", weights)
    if weights and len(weights) != len(cfg.style_layers):
        raise ValueError(
            f"{len(weights)} style layer weights given for {len(cfg.style_layers)} style layers"
        )
    if any(w < 0 for w in weights):
        raise ValueError(f"style layer weights must not be negative, got {_numbers(weights)}")
    if cfg.tv_weight < 0:
        raise ValueError(f"tv_weight must not be negative, got {cfg.tv_weight}")
    check_choice(cfg.optimizer, OPTIMIZERS, "optimizer")
    check_choice(cfg.pooling, POOLINGS, "pooling")
    check_choice(cfg.network_weights, WEIGHT_SOURCES, "network_weights")
    check_choice(cfg.device, DEVICES, "device")
    check_choice(cfg.precision, PRECISIONS, "precision")
    check_choice(cfg.conv_algorithm, CONV_ALGORITHMS, "conv_algorithm")
    check_choice(cfg.style_scale, STYLE_SCALES, "style_scale")
    check_choice(cfg.preserve_color, COLOR_METHODS, "preserve_color")
    check_choice(cfg.color_basis, COLOR_BASES, "color_basis")
    check_choice(cfg.mask_mode, MASK_MODES, "mask_mode")
    check_choice(cfg.padding, PADDINGS, "padding")
    blend = tuple(float(w) for w in cfg.style_blend)
    object.__setattr__(cfg, "style_blend", blend)
    if any(not w >= 0 for w in blend) or (blend and sum(blend) == 0):
        raise ValueError(f"style blend weights must be non-negative and not all zero, got {_numbers(blend)}")
    _check_pyramid(cfg)
    if cfg.pyramid_steps < 1:
        raise ValueError(f"pyramid_steps must be at least 1, got {cfg.pyramid_steps}")
    if not 0 <= cfg.plateau_tol < 1:
        raise ValueError(f"plateau_tol must lie in [0, 1), got {cfg.plateau_tol}")
    if cfg.plateau_window < 1:
        raise ValueError(f"plateau_window must be at least 1, got {cfg.plateau_window}")
    if cfg.lbfgs_history < 1:
        raise ValueError(f"lbfgs_history must be at least 1, got {cfg.lbfgs_history}")
    if not cfg.adam_lr > 0:
        raise ValueError(f"adam_lr must be positive, got {cfg.adam_lr}")


def _numbers(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _check_pyramid(cfg: TransferConfig) -> None:
    if isinstance(cfg.pyramid, str):
        check_choice(cfg.pyramid, ("auto",), "pyramid")
        return
    pyramid = tuple(int(v) for v in cfg.pyramid)
    object.__setattr__(cfg, "pyramid", pyramid)
    if any(v < MIN_SIZE for v in pyramid) or any(b <= a for a, b in zip(pyramid, (*pyramid[1:], cfg.size))):
        raise ValueError(
            f"pyramid sizes {', '.join(map(str, pyramid))} must increase, be at least {MIN_SIZE} "
            f"and stay below size {cfg.size}"
        )


def auto_pyramid(size: int, init: str = "content") -> tuple[int, ...]:
    """The coarse levels the default schedule runs before ``size``: halving from ``size`` down to
    :data:`PYRAMID_MIN` px (2048 -> 512, 1024; 1024 -> 512; none up to 1023 px), or, when the
    run starts from white noise (``init="noise"``), down to :data:`PYRAMID_MIN_NOISE` px
    (512 -> 128, 256; none up to 255 px).

    Why not below 512 px from the photograph (measured at 256 px): a coarse level did not shorten
    the full-size level (the loss there is dominated by the finest style layers, whose statistics
    an upsampled image has lost), so it only added its own steps. Above, a full-size step costs
    four 512 px steps or more, and the paper's own high-resolution schedule starts at 512 px
    (Gatys et al. 2017). From noise, a full-size level alone spends its steps on the finest grain
    before the deep layers' large shapes appear; at the coarse levels a step costs a sixteenth or
    a quarter, and their shapes, upsampled, become the strokes of the full size.
    See README, "The default schedule"."""
    lowest = PYRAMID_MIN_NOISE if init == "noise" else PYRAMID_MIN
    sizes, side = [], size // 2
    while side >= lowest:
        sizes.insert(0, side)
        side //= 2
    return tuple(sizes)


#: The package's default: the paper's objective on the fast schedule (module docstring).
DEFAULT = TransferConfig()
#: The paper's settings: white noise, one level, every step (the notebooks' figures).
PAPER = TransferConfig(init="noise", pyramid=(), plateau_tol=0.0)


def blend_weights(cfg: TransferConfig, styles: int) -> tuple[float, ...]:
    """The weights mixing ``styles`` style images, summing to one (equal unless ``style_blend``)."""
    weights = cfg.style_blend or (1.0,) * styles
    if len(weights) != styles:
        raise ValueError(f"{len(weights)} style weights given for {styles} style images")
    total = sum(weights)
    return tuple(w / total for w in weights)


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(TransferConfig))
