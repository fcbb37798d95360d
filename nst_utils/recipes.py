"""The paper's three experiments: content reconstruction (Fig. 1, content row), texture synthesis
(Fig. 1, style row) and style transfer (sec. 3), with the controls of Gatys et al. (2017).

Each experiment turns its inputs into a config and images, and hands them to the run loop
(:func:`nst_utils.loop.run`), which computes the targets, builds the objective
(:mod:`nst_utils.objective`) and optimises it level by level. What belongs to the experiment stays
here: loading the photograph and the painting at the run's size, the region masks, and the colour
controls that act before and after the optimisation (:mod:`nst_utils.color`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from torch import Tensor

from . import engine
from .color import luminance_inputs, match_color, restore_colors
from .config import DEFAULT, PAPER, TransferConfig
from .features import VGG19Features
from .images import ImageSource, load_image, resize
from .layers import check_layers
from .loop import RunResult, run
from .masks import check_masks, load_mask
from .optimize import Callback

__all__ = ["load_pair", "make_extractor", "reconstruct_content", "synthesize_texture", "transfer"]

StyleSource = ImageSource | Tensor


def make_extractor(config: TransferConfig = DEFAULT, layers: Iterable[str] | None = None) -> VGG19Features:
    """A frozen VGG-19 for ``config`` (weights, pooling, device, precision), truncated after the
    deepest of ``layers`` (default: the config's content and style layers). The fastest one for
    this machine: see :mod:`nst_utils.engine`, which also records what it chose."""
    return engine.build_extractor(config, layers)


def reconstruct_content(
    image: Tensor,
    layer: str,
    *,
    config: TransferConfig = PAPER,
    extractor: VGG19Features | None = None,
    callbacks: Iterable[Callback] = (),
) -> RunResult:
    """Paper Fig. 1, content row: an image whose ``layer`` features match ``image``'s (eq. 1).

    ``config`` (default: the paper's, which starts from noise: from the photograph there would be
    nothing to reconstruct) supplies the steps, optimiser, initialisation, seed and machine
    settings; the run has one level, at ``image``'s size (the figure compares layers at one size).
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
    style image's. ``config`` (default: the paper's) supplies the steps, optimiser,
    initialisation, seed and machine; the run has one level, at the texture's size.
    """
    if layers is None:  # the config's layers, with the config's weights unless others are given
        layers = config.style_layers
        layer_weights = config.style_layer_weights if layer_weights is None else layer_weights
    layers = check_layers(layers, "style layer")
    if isinstance(layer_weights, Mapping):
        layer_weights = [layer_weights[n] for n in layers]
    out_shape = tuple(shape[-2:]) if shape is not None else tuple(style.shape[-2:])
    cfg = config.replace(size=max(out_shape), content_layers=(), style_layers=layers,
                         style_layer_weights=tuple(layer_weights or ()), style_weight=1.0, pyramid=())
    return run(cfg, style=style, shape=out_shape, extractor=extractor, callbacks=callbacks)


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
    config: TransferConfig = DEFAULT,
    *,
    masks: Sequence[Tensor | ImageSource] | None = None,
    style_masks: Sequence[Tensor | ImageSource | None] | None = None,
    extractor: VGG19Features | None = None,
    callbacks: Iterable[Callback] = (),
    live: Callable[[], TransferConfig] | None = None,
) -> RunResult:
    """Paper sec. 3: an image with ``content``'s features on the content layers and ``style``'s
    Gram matrices on the style layers, weighted ``alpha/beta = config.ratio``. Images may be
    paths, sample names, PIL images or tensors. ``config`` defaults to :data:`~nst_utils.config.DEFAULT`,
    the paper's objective on the fast schedule (``nst.PAPER`` for the paper's own); the run goes
    coarse to fine as ``config.levels()`` says (:func:`~nst_utils.loop.run`).

    The controls of Gatys et al. (2017): ``style`` may be a list of images, mixed with the
    weights ``config.style_blend``, or, with ``masks`` (one per style: tensors or image files
    drawn over the content at any size of its aspect ratio, scaled to the run's size), each
    applied to its own region of the output (``style_masks`` optionally restricts each style to a
    region of its painting). ``config.preserve_color`` keeps the content's colours
    (:mod:`nst_utils.color`).

    ``live`` (the interactive panel's widgets) is asked for the settings at every step; when they
    change, the optimiser restarts from the best image so far (:mod:`nst_utils.live`).
    """
    # Bad images and masks fail here, the rest of the checks in run(): before anything large.
    c, styles = load_pair(content, _style_list(style), config)
    region_masks = None if masks is None else [load_mask(m, tuple(c.shape[-2:])) for m in masks]
    own_masks = _style_masks(style_masks, styles)
    original = c
    if config.preserve_color == "histogram":
        styles = [match_color(s, c, config.color_basis) for s in styles]
    elif config.preserve_color == "luminance":
        pairs = [luminance_inputs(c, s) for s in styles]
        c, styles = pairs[0][0], [gray_style for _, gray_style in pairs]
    optimise = None
    if live is not None:
        from .live import LiveSettings  # the panel's restarts: only when asked for

        optimise = LiveSettings(live)
    result = run(config, content=c, style=styles, masks=region_masks, style_masks=own_masks,
                 extractor=extractor, callbacks=callbacks, optimise=optimise)
    # With luminance-only transfer: the stylised luminance in the photograph's colours.
    result.image, result.content = restore_colors(result.image, original, config.preserve_color), original
    return result


def _style_masks(masks: Sequence[Tensor | ImageSource | None] | None,
                 styles: list[Tensor]) -> list[Tensor | None] | None:
    """Each style's own mask (a region of its painting) at the painting's size, or None."""
    if masks is None:
        return None
    if len(masks) != len(styles):
        raise ValueError(f"{len(masks)} style masks given for {len(styles)} style images")
    loaded = [None if m is None else load_mask(m, tuple(s.shape[-2:])) for m, s in zip(masks, styles)]
    check_masks([m for m in loaded if m is not None])
    return loaded
