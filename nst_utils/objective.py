"""What a run minimises: the targets, the objective of paper eq. 7, and the starting image.

The targets are computed once, without gradient: the content features ``P^l`` of the photograph
and the Gram matrices ``A^l`` of the painting. :class:`MatchingObjective` then turns an image into
its weighted loss terms, ``alpha * L_content``, ``beta * L_style`` and an optional total-variation
term, which :func:`~nst_utils.optimize.optimize` minimises. :func:`initial_image` is where the
optimisation starts: the paper's white noise, the photograph or the painting.

With the controls of Gatys et al. (2017) the style targets change shape: several paintings mixed
into one Gram matrix per layer (:func:`style_grams`), or one guided Gram matrix per region of the
output (:class:`StyleRegion`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .config import TransferConfig, blend_weights
from .features import VGG19Features
from .images import load_image, resize
from .losses import (
    content_loss,
    gram_matrix,
    guided_gram_matrix,
    guided_style_layer_loss,
    style_layer_loss,
    tv_loss,
)
from .masks import feature_shape, layer_masks

__all__ = [
    "NOISE_STD", "MatchingObjective", "StyleRegion", "build_objective", "content_targets", "initial_image",
    "style_grams", "style_targets",
]

#: Standard deviation of the white-noise initialisation around mid-grey, in [0, 1] pixel units.
NOISE_STD = 0.01


@torch.no_grad()
def content_targets(extractor: VGG19Features, image: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
    """``P^l`` for each content layer, computed once."""
    return dict(extractor(image, layers))


@torch.no_grad()
def style_targets(extractor: VGG19Features, image: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
    """``A^l`` (Gram matrices) for each style layer, computed once."""
    return {name: gram_matrix(f) for name, f in extractor(image, layers).items()}


@torch.no_grad()
def style_grams(
    extractor: VGG19Features,
    styles: Sequence[Tensor],
    layers: Sequence[str],
    shape: tuple[int, int],
    config: TransferConfig,
    style_masks: Sequence[Tensor | None] | None = None,
) -> dict[str, Tensor]:
    """The style targets of a run whose output has ``shape`` ``(H, W)``, per layer.

    Without ``style_masks``: one ``A^l``. Each painting's Gram matrix is taken per pixel of its
    own image and scaled to the output's ``M_l`` (the style loss divides by the output's
    ``M_l^2``), so a painting of any size, or several mixed with ``config.style_blend``, counts as
    much as one of the output's size; for one painting of the output's size this is exactly
    :func:`style_targets`. With ``style_masks`` (spatial control; ``None`` for a whole painting):
    a stack of each painting's guided Gram matrix ``A_r^l``, per unit of mask mass, so regions and
    paintings of any size compare.
    """
    feats = [extractor(s, layers) for s in styles]
    if style_masks is not None:
        def guided(f: dict[str, Tensor], mask: Tensor | None, name: str) -> Tensor:
            whole = f[name].new_ones(1, 1, *f[name].shape[-2:])
            mask_l = whole if mask is None else layer_masks(mask, [name], config.mask_mode)[name]
            return guided_gram_matrix(f[name], mask_l)[0]

        return {n: torch.stack([guided(f, m, n) for f, m in zip(feats, style_masks)]) for n in layers}
    weights = blend_weights(config, len(styles)) if len(styles) > 1 else (1.0,)
    out = {}
    for n in layers:
        m_out = math.prod(feature_shape(shape, n))
        out[n] = sum(w * gram_matrix(f[n]) * (m_out / (f[n].shape[-1] * f[n].shape[-2]))
                     for w, f in zip(weights, feats))
    return out


@dataclass
class StyleRegion:
    """One region of spatial control (Gatys et al. 2017): where it lies in the output
    (``layer_masks``, its mask at each style layer's resolution), its target Grams ``A_r`` (per
    unit of mask mass, :func:`~nst_utils.losses.guided_gram_matrix`) and its weight ``lambda_r``."""

    layer_masks: Mapping[str, Tensor]
    targets: Mapping[str, Tensor]
    weight: float = 1.0


@dataclass
class MatchingObjective:
    """``alpha * L_content + beta * L_style + tv_weight * TV`` as weighted terms (paper eq. 7).

    With no style targets it is content reconstruction (eq. 1), with no content targets texture
    synthesis (eq. 5), with both style transfer. ``style_layer_weights`` default to ``1/L``.
    With ``regions`` (spatial control) the style term is ``beta * sum_l w_l sum_r lambda_r E_l^r``
    over the regions' guided Grams instead of ``style_targets``' plain ones.

    Each call also keeps, in :attr:`layer_losses`, every layer's weighted share of the loss
    (``alpha * L_content`` per content layer, ``beta * w_l * E_l`` per style layer), detached:
    what the panel draws as bars.
    """

    extractor: VGG19Features
    content_targets: Mapping[str, Tensor]
    style_targets: Mapping[str, Tensor]
    content_weight: float = 1.0
    style_weight: float = 1.0
    style_layer_weights: Mapping[str, float] = field(default_factory=dict)
    tv_weight: float = 0.0
    regions: Sequence[StyleRegion] = ()
    layer_losses: dict[str, Tensor] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        style_layers = self.style_targets or (self.regions[0].targets if self.regions else {})
        if not self.style_layer_weights and style_layers:
            self.style_layer_weights = {n: 1.0 / len(style_layers) for n in style_layers}

    def layers(self) -> list[str]:
        """The layers the objective reads, content first."""
        return list(dict.fromkeys([*self.content_targets, *self.style_layer_weights]))

    def _style_layer(self, name: str, features: Tensor) -> Tensor:
        if not self.regions:
            return style_layer_loss(features, self.style_targets[name])
        return sum(r.weight * guided_style_layer_loss(features, r.layer_masks[name], r.targets[name])
                   for r in self.regions)

    def __call__(self, image: Tensor) -> dict[str, Tensor]:
        feats = self.extractor(image, self.layers())
        per_layer = {n: self.content_weight * content_loss(feats[n], p)
                     for n, p in self.content_targets.items()}
        terms: dict[str, Tensor] = {}
        if per_layer:
            terms["content"] = sum(per_layer.values())
        styled = {n: self.style_weight * w * self._style_layer(n, feats[n])
                  for n, w in self.style_layer_weights.items() if w}
        if self.style_layer_weights:  # eq. 5 as in losses.style_loss, layer by layer for the shares
            terms["style"] = sum(styled.values()) if styled else image.new_zeros(())
        if self.tv_weight:
            terms["tv"] = self.tv_weight * tv_loss(image)
        self.layer_losses = {n: t.detach() for n, t in {**per_layer, **styled}.items()}
        return terms


def build_objective(
    config: TransferConfig,
    extractor: VGG19Features,
    content: Mapping[str, Tensor],
    style: Mapping[str, Tensor],
    masks: Sequence[Tensor] | None = None,
) -> MatchingObjective:
    """The objective of ``config``'s weights and layers, from targets computed beforehand
    (``content``: ``P^l`` by layer; ``style``: ``A^l`` by layer, or with ``masks``, one region's
    target per mask stacked, as :func:`style_grams` returns them)."""
    style = {n: style[n] for n in config.style_layers}
    regions: list[StyleRegion] = []
    if masks is not None and config.style_layers:
        regions = [StyleRegion(layer_masks(m, config.style_layers, config.mask_mode),
                               {n: style[n][r] for n in config.style_layers}, float(m.mean()))
                   for r, m in enumerate(masks)]
        style = {}
    return MatchingObjective(
        extractor, {n: content[n] for n in config.content_layers}, style,
        content_weight=config.content_weight, style_weight=config.style_weight,
        style_layer_weights=config.layer_weights() if config.style_layers else {},
        tv_weight=config.tv_weight, regions=regions,
    )


def initial_image(
    init: str | Tensor,
    *,
    content: Tensor | None = None,
    style: Tensor | None = None,
    shape: tuple[int, ...] | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Tensor:
    """The starting image: ``"content"``, ``"style"`` (resized to the content's size),
    ``"noise"``, a tensor, or a path/sample name loaded at the target size.

    ``"noise"`` is the paper's white noise, Gaussian with standard deviation ``NOISE_STD``
    around mid-grey, drawn from a seeded CPU generator so every device starts from the same image.
    """
    ref = content if content is not None else style
    if shape is None:
        if ref is None:
            raise ValueError("initial_image needs a shape, a content or a style image")
        shape = tuple(ref.shape)
    device = device if device is not None else (ref.device if ref is not None else "cpu")
    if isinstance(init, Tensor):
        start = init
    elif init == "noise":
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        start = 0.5 + NOISE_STD * noise
    elif init == "content":
        if content is None:
            raise ValueError("init 'content' needs a content image")
        start = content
    elif init == "style":
        if style is None:
            raise ValueError("init 'style' needs a style image")
        start = resize(style, (shape[-2], shape[-1]))
    else:
        start = load_image(init, (shape[-2], shape[-1]))
    if tuple(start.shape) != tuple(shape):
        raise ValueError(f"initial image has shape {tuple(start.shape)}, expected {tuple(shape)}")
    return start.detach().to(device=device, dtype=torch.float32).clamp(0, 1).clone()
