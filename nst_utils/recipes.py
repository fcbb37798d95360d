"""The paper's three experiments on one loop: content reconstruction (Fig. 1, content row),
texture synthesis (Fig. 1, style row) and style transfer (sec. 3).

Each experiment computes its targets once without gradient (the content features ``P^l``, the
style Gram matrices ``A^l``), builds a :class:`MatchingObjective` that returns the weighted loss
terms, and minimises it with :func:`~nst_utils.optimize`. All three go through :func:`run`, the one
run loop that the command line and the interactive panel use as well. Around the optimiser it
adds what every real run needs: a memory check and the extractor (asked once of the engine room,
:mod:`nst_utils.engine`), coarse-to-fine levels, and restarts when settings change mid-run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from . import engine
from .color import luminance_inputs, match_color, recombine
from .config import PAPER, TransferConfig, blend_weights
from .engine import Machine, resolve_device
from .features import VGG19Features
from .guides import check_guides, feature_shape, layer_guides, load_guide
from .images import ImageSource, load_image, resize, target_size
from .layers import check_layers
from .losses import (
    content_loss,
    gram_matrix,
    guided_gram_matrix,
    guided_style_layer_loss,
    style_layer_loss,
    tv_loss,
)
from .optimize import Callback, OptimizeResult, StepInfo, optimize

__all__ = [
    "MatchingObjective", "RunResult", "Segment", "content_targets", "initial_image", "load_pair", "make_extractor",
    "reconstruct_content", "resolve_device", "run", "style_targets", "synthesize_texture", "transfer",
]

#: Standard deviation of the white-noise initialisation around mid-grey, in [0, 1] pixel units.
NOISE_STD = 0.01


def make_extractor(config: TransferConfig = PAPER, layers: Iterable[str] | None = None) -> VGG19Features:
    """A frozen VGG-19 for ``config`` (weights, pooling, device, precision), truncated after the
    deepest of ``layers`` (default: the config's content and style layers). The fastest one for
    this machine: see :mod:`nst_utils.engine`, which also records what it chose."""
    return engine.build_extractor(config, layers)


@torch.no_grad()
def content_targets(extractor: VGG19Features, image: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
    """``P^l`` for each content layer, computed once."""
    return dict(extractor(image, layers))


@torch.no_grad()
def style_targets(extractor: VGG19Features, image: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
    """``A^l`` (Gram matrices) for each style layer, computed once."""
    return {name: gram_matrix(f) for name, f in extractor(image, layers).items()}


@dataclass
class StyleRegion:
    """One region of spatial control (Gatys et al. 2017): where it lies in the output (``guides``,
    its mask at each style layer's resolution), its target Grams ``A_r`` (per unit of guide mass,
    :func:`~nst_utils.losses.guided_gram_matrix`) and its weight ``lambda_r``."""

    guides: Mapping[str, Tensor]
    targets: Mapping[str, Tensor]
    weight: float = 1.0


@dataclass
class MatchingObjective:
    """``alpha * L_content + beta * L_style + tv_weight * TV`` as weighted terms (paper eq. 7).

    With no style targets it is content reconstruction (eq. 1), with no content targets texture
    synthesis (eq. 5), with both style transfer. ``style_layer_weights`` default to ``1/L``.
    With ``regions`` (spatial control) the style term is ``beta * sum_l w_l sum_r lambda_r E_l^r``
    over the regions' guided Grams instead of ``style_targets``' plain ones.

    Each call also keeps, in :attr:`layer_terms`, every layer's weighted share of the loss
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
    layer_terms: dict[str, Tensor] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        style_layers = self.style_targets or (self.regions[0].targets if self.regions else {})
        if not self.style_layer_weights and style_layers:
            self.style_layer_weights = {n: 1.0 / len(style_layers) for n in style_layers}

    def layers(self) -> list[str]:
        return list(dict.fromkeys([*self.content_targets, *self.style_layer_weights]))

    def _style_layer(self, name: str, features: Tensor) -> Tensor:
        if not self.regions:
            return style_layer_loss(features, self.style_targets[name])
        return sum(r.weight * guided_style_layer_loss(features, r.guides[name], r.targets[name])
                   for r in self.regions)

    def __call__(self, image: Tensor) -> dict[str, Tensor]:
        feats = self.extractor(image, self.layers())
        per_layer = {n: self.content_weight * content_loss(feats[n], p) for n, p in self.content_targets.items()}
        terms: dict[str, Tensor] = {}
        if per_layer:
            terms["content"] = sum(per_layer.values())
        styled = {n: self.style_weight * w * self._style_layer(n, feats[n])
                  for n, w in self.style_layer_weights.items() if w}
        if self.style_layer_weights:  # eq. 5 as in losses.style_loss, layer by layer for the shares
            terms["style"] = sum(styled.values()) if styled else image.new_zeros(())
        if self.tv_weight:
            terms["tv"] = self.tv_weight * tv_loss(image)
        self.layer_terms = {n: t.detach() for n, t in {**per_layer, **styled}.items()}
        return terms


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


# ---- the three experiments --------------------------------------------------------------------


def reconstruct_content(
    image: Tensor,
    layer: str,
    *,
    config: TransferConfig = PAPER,
    extractor: VGG19Features | None = None,
    callbacks: Iterable[Callback] = (),
) -> RunResult:
    """Paper Fig. 1, content row: an image whose ``layer`` features match ``image``'s (eq. 1).

    ``config`` supplies the steps, optimiser, initialisation, seed and machine settings.
    """
    (layer,) = check_layers([layer], "content layer")
    cfg = config.replace(size=max(image.shape[-2:]), content_layers=(layer,), style_layers=(),
                         style_layer_weights=(), ratio=1.0, style_weight=1.0, pyramid=())
    return run(cfg, content=image, extractor=extractor, callbacks=callbacks)


def synthesize_texture(
    style: Tensor,
    layers: Iterable[str] | None = None,
    *,
    config: TransferConfig = PAPER,
    layer_weights: Mapping[str, float] | Sequence[float] | None = None,
    shape: tuple[int, ...] | None = None,
    extractor: VGG19Features | None = None,
    callbacks: Iterable[Callback] = (),
) -> RunResult:
    """Paper Fig. 1, style row: a texture from noise matching ``style``'s Gram matrices (eq. 5).

    ``layers`` default to the config's style layers; ``layer_weights`` (w_l, a mapping or one
    value per layer) to equal weights ``1/L``; ``shape`` (``(1, 3, H, W)`` or ``(H, W)``) to the
    style image's. ``config`` supplies the steps, optimiser, initialisation, seed and machine.
    """
    if layers is None:  # the config's layers, with the config's weights unless others are given
        layers, layer_weights = config.style_layers, config.style_layer_weights if layer_weights is None else layer_weights
    layers = check_layers(layers, "style layer")
    if isinstance(layer_weights, Mapping):
        layer_weights = [layer_weights[n] for n in layers]
    out_shape = tuple(shape[-2:]) if shape is not None else tuple(style.shape[-2:])
    cfg = config.replace(size=max(out_shape), content_layers=(), style_layers=layers,
                         style_layer_weights=tuple(layer_weights or ()), style_weight=1.0, pyramid=())
    return run(cfg, style=style, shape=out_shape, extractor=extractor, callbacks=callbacks)


StyleSource = ImageSource | Tensor


def _style_list(style: StyleSource | Sequence[StyleSource]) -> list[StyleSource]:
    if isinstance(style, (list, tuple)):
        if not style:
            raise ValueError("no style image given")
        return list(style)
    return [style]


def load_pair(
    content: ImageSource | Tensor, style: StyleSource | Sequence[StyleSource], config: TransferConfig
) -> tuple[Tensor, Tensor | list[Tensor]]:
    """Content at ``config.size`` (longest side); style at the content's exact size (the paper)
    or, with ``style_scale="own"``, at its own aspect with the same longest side. A list of
    styles gives a list back."""
    c = content if isinstance(content, Tensor) else load_image(content, config.size)
    if isinstance(content, Tensor) and max(c.shape[-2:]) != config.size:
        c = resize(c, config.size)
    style_size = tuple(c.shape[-2:]) if config.style_scale == "content" else config.size
    styles = [resize(s if isinstance(s, Tensor) else load_image(s, style_size), style_size)
              for s in _style_list(style)]
    return c, (styles if isinstance(style, (list, tuple)) else styles[0])


def transfer(
    content: ImageSource | Tensor,
    style: StyleSource | Sequence[StyleSource],
    config: TransferConfig = PAPER,
    *,
    masks: Sequence[Tensor | ImageSource] | None = None,
    style_masks: Sequence[Tensor | ImageSource | None] | None = None,
    extractor: VGG19Features | None = None,
    callbacks: Iterable[Callback] = (),
    live: Callable[[], TransferConfig] | None = None,
) -> RunResult:
    """Paper sec. 3: an image with ``content``'s features on the content layers and ``style``'s
    Gram matrices on the style layers, weighted ``alpha/beta = config.ratio``. Images may be
    paths, sample names, PIL images or tensors; see :func:`run` for ``live`` and the levels.

    The controls of Gatys et al. (2017): ``style`` may be a list of images, mixed with the
    weights ``config.style_blend``, or, with ``masks`` (one per style: tensors or image files
    drawn over the content at any size of its aspect ratio, scaled to the run's size), each
    applied to its own region of the output (``style_masks`` optionally restricts each style to a
    region of its painting). ``config.preserve_color`` keeps the content's colours
    (:mod:`nst_utils.color`).
    """
    # Bad images and masks fail here, the rest of the checks in run(): before anything large.
    c, styles = load_pair(content, _style_list(style), config)
    guides = None if masks is None else [load_guide(m, tuple(c.shape[-2:])) for m in masks]
    style_guides = _style_guides(style_masks, styles)
    original = c
    if config.preserve_color == "histogram":
        styles = [match_color(s, c, config.color_basis) for s in styles]
    elif config.preserve_color == "luminance":
        pairs = [luminance_inputs(c, s) for s in styles]
        c, styles = pairs[0][0], [gray_style for _, gray_style in pairs]
    result = run(config, content=c, style=styles, guides=guides, style_guides=style_guides,
                 extractor=extractor, callbacks=callbacks, live=live)
    if config.preserve_color == "luminance":  # the stylised luminance, the photograph's colours
        result.image, result.content = recombine(result.image, original), original
    return result


def _check_blend(config: TransferConfig, styles: int, guides) -> None:
    if config.style_blend and guides is not None:
        raise ValueError("style blend weights mix styles everywhere; with masks each style has its own region")
    if config.style_blend or (styles > 1 and guides is None):
        blend_weights(config, styles)  # one weight per style, or a one-line error


def _style_guides(masks, styles: list[Tensor]) -> list[Tensor | None] | None:
    if masks is None:
        return None
    if len(masks) != len(styles):
        raise ValueError(f"{len(masks)} style masks given for {len(styles)} style images")
    guides = [None if m is None else load_guide(m, tuple(s.shape[-2:])) for m, s in zip(masks, styles)]
    check_guides([g for g in guides if g is not None])
    return guides


# ---- the run loop -----------------------------------------------------------------------------


@dataclass
class Segment:
    """One uninterrupted call of :func:`~nst_utils.optimize` within a run."""

    first_step: int
    config: TransferConfig
    shape: tuple[int, int]
    steps: int = 0
    evaluations: int = 0
    stopped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        cfg = self.config
        return {"first_step": self.first_step, "steps": self.steps, "height": self.shape[0],
                "width": self.shape[1], "ratio": cfg.ratio, "content_layers": cfg.content_layers,
                "style_layer_weights": cfg.layer_weights() if cfg.style_layers else {},
                "tv_weight": cfg.tv_weight, "optimizer": cfg.optimizer}


@dataclass
class RunResult(OptimizeResult):
    """A finished run: the best image of its last segment, the step history across levels and
    restarts, the settings (``config``, with ``steps`` the steps actually taken) and what ran
    (``machine``: device, precision, convolution algorithm)."""

    config: TransferConfig = PAPER
    content: Tensor | None = None
    style: Tensor | None = None
    #: The memory estimate checked before the run (bytes; see :mod:`nst_utils.engine.memory`).
    estimated_memory: int | None = None
    machine: Machine | None = None
    segments: list[Segment] = field(default_factory=list)
    #: The network the run used, so a caller can reuse it for the next run.
    extractor: VGG19Features | None = field(default=None, repr=False)

    def metadata(self) -> dict[str, Any]:
        """What to store with the image: the settings, what actually ran, and how it went."""
        from . import __version__

        return {
            "nst_utils": __version__, "torch": torch.__version__, "config": self.config.to_dict(),
            "ran": self.machine.to_dict() if self.machine else {}, "steps": self.steps,
            "evaluations": self.evaluations, "stopped": self.stopped,
            "final_loss": self.history[-1].losses if self.history else {},
            "segments": [s.to_dict() for s in self.segments],
        }


def restart_key(cfg: TransferConfig) -> tuple:
    """The settings that define the objective and the optimiser: a change mid-run restarts it."""
    return (cfg.ratio, cfg.style_weight, cfg.content_layers, cfg.style_layers, tuple(cfg.layer_weights().items())
            if cfg.style_layers else (), cfg.tv_weight, cfg.optimizer, cfg.lbfgs_history, cfg.adam_lr)


def run(
    config: TransferConfig,
    *,
    content: Tensor | None = None,
    style: Tensor | Sequence[Tensor] | None = None,
    shape: tuple[int, int] | None = None,
    guides: Sequence[Tensor] | None = None,
    style_guides: Sequence[Tensor | None] | None = None,
    extractor: VGG19Features | None = None,
    callbacks: Iterable[Callback] = (),
    live: Callable[[], TransferConfig] | None = None,
) -> RunResult:
    """The one run loop: optimise an image of ``shape`` (default: the content's, else the
    style's) against ``content`` (for the content layers) and ``style`` (the style layers).

    Style images may have any size: each Gram matrix is taken per pixel of its own image and
    rescaled to the output's (with a style of the output's size, exactly ``A^l`` of eq. 5).
    ``style`` may be a list: its images' Gram matrices are mixed with ``config.style_blend``, or,
    with ``guides`` (one mask of ``shape`` per style), each style matches its own region of the
    output through guided Gram matrices (Gatys et al. 2017), optionally only a region of its own
    image (``style_guides``, ``None`` for the whole painting).

    Before anything large is allocated, the engine room checks that the run fits in memory
    (raising with the largest size that fits) and builds the extractor, or checks that
    ``extractor`` agrees with ``config``. With ``config.pyramid`` it optimises at the smaller
    sizes first (coarse-to-fine, Gatys et al. 2017), each level starting from the previous
    result upsampled. ``live`` (e.g. an interactive panel's widgets) is asked for the current
    settings at every step: when the objective's settings change, the optimiser restarts from
    the current image (L-BFGS' curvature pairs describe the old objective), and the final
    level runs to ``live().steps``. Callbacks see one continuous step count; one returning
    True stops the run, as does Ctrl-C; either way the best image so far is returned.
    """
    if content is None and style is None:
        raise ValueError("run needs a content image, a style image or both")
    styles = [] if style is None else list(style) if isinstance(style, (list, tuple)) else [style]
    shape = tuple(shape or (content if content is not None else styles[0]).shape[-2:])
    if guides is not None:
        check_guides(guides, len(styles))
        if any(tuple(g.shape[-2:]) != shape for g in guides):
            raise ValueError(f"masks must have the output's size {shape[1]}x{shape[0]}")
    _check_blend(config, len(styles), guides)
    prepared = engine.prepare(config, shape, extractor)
    return _Run(config, prepared, content, styles, shape, list(callbacks), live,
                guides, style_guides).execute()


@dataclass
class _StyleInputs:
    """The style images of one level, and the masks of spatial control (or ``None``)."""

    styles: list[Tensor]
    guides: list[Tensor] | None
    style_guides: list[Tensor | None]
    shape: tuple[int, int]

    def targets(self, extractor: VGG19Features, layers: list[str], cfg: TransferConfig) -> dict[str, Tensor]:
        """Per layer: one Gram matrix ``A^l`` (one style, or several mixed), or with guides a
        stack of each region's guided Gram ``A_r^l``."""
        feats = [extractor(s, layers) for s in self.styles]
        if self.guides is not None:  # per unit of mask mass: regions and paintings of any size compare
            return {n: torch.stack([guided_gram_matrix(f[n], _full(f[n]) if g is None else
                                                       layer_guides(g, [n], cfg.guide_mode)[n])[0]
                                    for f, g in zip(feats, self.style_guides)]) for n in layers}
        # Each style's Gram per pixel of its own image, times the output's M_l (the style loss
        # divides by the output's M_l^2): a style image of any size, or several mixed with the
        # weights of style_blend, counts as much as one of the output's size.
        weights = blend_weights(cfg, len(self.styles)) if len(self.styles) > 1 else (1.0,)
        out = {}
        for n in layers:
            m_out = math.prod(feature_shape(self.shape, n))
            out[n] = sum(w * gram_matrix(f[n]) * (m_out / (f[n].shape[-1] * f[n].shape[-2]))
                         for w, f in zip(weights, feats))
        return out


def _full(features: Tensor) -> Tensor:
    return features.new_ones(1, 1, *features.shape[-2:])


class _Run:
    """The state of one :func:`run`: levels, segments, the step history, the current image."""

    def __init__(self, config, prepared, content, styles, shape, callbacks, live, guides, style_guides) -> None:
        self.config, self.prepared, self.callbacks = config, prepared, callbacks
        self.content, self.styles, self.shape = content, styles, shape
        self.guides, self.style_guides = guides, style_guides or [None] * len(styles)
        self.live = live or (lambda: config)
        self.extractor = prepared.extractor
        self.history: list[StepInfo] = []
        self.segments: list[Segment] = []
        self.current: Tensor | None = None
        self.stop_all = self.restart = False
        self.t0 = time.perf_counter()

    def execute(self) -> RunResult:
        last: OptimizeResult | None = None
        levels = self.config.levels()
        with self.prepared.running() as watch_heap:
            for index, (size, steps) in enumerate(levels):
                final = index == len(levels) - 1
                level_shape = self.shape if final else target_size(self.shape[1], self.shape[0], size)
                last = self._level(level_shape, None if final else steps, watch_heap) or last
                if self.stop_all:
                    break
        return self._result(last)

    def _scaled(self, image: Tensor | None, level_shape: tuple[int, int]) -> Tensor | None:
        """An input image (or mask) at a level, on the run's device: the output's shape if it has
        it, else scaled alike."""
        if image is None:
            return None
        image = image.to(self.prepared.machine.device)
        if level_shape == self.shape:
            return image
        if tuple(image.shape[-2:]) == self.shape:
            return resize(image, level_shape)
        return resize(image, max(1, round(max(image.shape[-2:]) * max(level_shape) / max(self.shape))))

    def _level(self, level_shape, fixed_steps, watch_heap) -> OptimizeResult | None:
        content = self._scaled(self.content, level_shape)
        inputs = _StyleInputs([self._scaled(s, level_shape) for s in self.styles],
                              None if self.guides is None else [self._scaled(g, level_shape) for g in self.guides],
                              [self._scaled(g, level_shape) for g in self.style_guides], level_shape)
        style = inputs.styles[0] if inputs.styles else None
        if self.current is None:
            self.current = initial_image(self.config.init, content=content, style=style,
                                         shape=(1, 3, *level_shape), seed=self.config.seed,
                                         device=self.prepared.machine.device)
        else:
            self.current = resize(self.current, level_shape)
        cache: dict[str, dict[str, Tensor]] = {"content": {}, "style": {}}
        done, out, cfg = 0, None, self.config
        before = len(self.history)  # steps taken at the coarser levels
        while not self.stop_all:
            cfg = self._settings(cfg)
            planned = (fixed_steps or cfg.steps) - done
            if planned < 1:
                break
            segment = Segment(len(self.history) + 1, cfg, level_shape)
            self.segments.append(segment)
            self.restart = False
            objective = self._objective(cfg, content, inputs, cache)
            out = optimize(
                objective, self.current, steps=planned,
                optimizer=cfg.optimizer, lbfgs_history=cfg.lbfgs_history, adam_lr=cfg.adam_lr,
                callbacks=[self._on_step(segment, objective, before, done + planned, fixed_steps), watch_heap],
            )
            segment.steps, segment.evaluations, segment.stopped = out.steps, out.evaluations, out.stopped
            done += out.steps
            if out.stopped == "interrupted":
                self.stop_all = True
            if not self.restart:
                break  # the planned steps are done, or the optimiser ended early (converged)
        if out is not None:
            self.current = out.image
        return out

    def _settings(self, running: TransferConfig) -> TransferConfig:
        """The live settings for the next segment (a pyramid's sizes stay those of the run)."""
        return self.live().replace(size=running.size, init=running.init, pyramid=running.pyramid)

    def _objective(self, cfg, content, inputs: _StyleInputs, cache) -> MatchingObjective:
        """The objective for ``cfg``; targets computed once per layer and level (``cache``)."""
        layers = [*cfg.content_layers, *cfg.style_layers]
        if layers and not set(layers) <= set(self.extractor.layer_names):  # live settings went deeper
            self.extractor = engine.build_extractor(cfg, layers)
            self.prepared.machine = engine.machine_of(self.extractor)
        for kind, image, wanted in (("content", content, cfg.content_layers),
                                    ("style", inputs.styles[0] if inputs.styles else None, cfg.style_layers)):
            missing = [n for n in wanted if n not in cache[kind]]
            if missing and image is None:
                raise ValueError(f"{kind} layers {', '.join(missing)} need a {kind} image")
            if missing and kind == "content":
                cache[kind].update(content_targets(self.extractor, image, missing))
            elif missing:
                cache[kind].update(inputs.targets(self.extractor, missing, cfg))
        style = {n: cache["style"][n] for n in cfg.style_layers}
        regions: list[StyleRegion] = []
        if inputs.guides is not None and cfg.style_layers:
            regions = [StyleRegion(layer_guides(g, cfg.style_layers, cfg.guide_mode),
                                   {n: style[n][r] for n in cfg.style_layers}, float(g.mean()))
                       for r, g in enumerate(inputs.guides)]
            style = {}
        return MatchingObjective(
            self.extractor, {n: cache["content"][n] for n in cfg.content_layers}, style,
            content_weight=cfg.content_weight, style_weight=cfg.style_weight,
            style_layer_weights=cfg.layer_weights() if cfg.style_layers else {}, tv_weight=cfg.tv_weight,
            regions=regions,
        )

    def _on_step(self, segment: Segment, objective: MatchingObjective, before: int, planned_end: int,
                 fixed_steps: int | None) -> Callback:
        """The step callback of one segment; ``before`` steps precede its level, whose step count
        this segment would end at ``planned_end``."""
        def on_step(info: StepInfo) -> bool:
            shares = objective.layer_terms
            values = torch.stack(list(shares.values())).tolist() if shares else []  # one sync, not one per layer
            info = replace(info, step=segment.first_step + info.step - 1, elapsed=time.perf_counter() - self.t0,
                           layer_losses=dict(zip(shares, values)))
            self.history.append(replace(info, image=None))  # numbers only: images would be gigabytes
            self.current = info.image.detach().clone()  # Adam keeps updating its tensor in place
            asked = [bool(callback(info)) for callback in self.callbacks]  # every callback sees every step
            if any(asked):
                self.stop_all = True
                return True
            now = self.live()
            if fixed_steps is None and now.steps <= info.step - before < planned_end:
                return True  # the step count was lowered below this segment's end
            self.restart = restart_key(now) != restart_key(segment.config)
            return self.restart

        return on_step

    def _result(self, last: OptimizeResult | None) -> RunResult:
        if last is None:  # stopped before the first step
            image, best, evaluations = self.current, math.inf, 0
        else:
            image, best = resize(last.image, self.shape), last.best_total
            evaluations = sum(s.evaluations for s in self.segments)
        cfg = self.segments[-1].config if self.segments else self.config
        stopped = next((s.stopped for s in reversed(self.segments) if s.stopped), None)
        return RunResult(
            image=image, history=self.history, best_total=best, stopped=stopped if self.stop_all else None,
            evaluations=evaluations, seconds=time.perf_counter() - self.t0,
            config=cfg,
            content=self.content, style=self.styles[0] if len(self.styles) == 1 else None, estimated_memory=self.prepared.estimated_memory,
            machine=self.prepared.machine, segments=self.segments, extractor=self.extractor,
        )
