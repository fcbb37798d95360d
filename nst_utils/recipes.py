"""The paper's three experiments on top of one loop: content reconstruction, texture synthesis
(style reconstruction) and style transfer.

Each recipe builds targets once without gradient (``P^l`` for content, Gram matrices ``A^l``
for style), an objective returning the *weighted* terms, and calls :func:`optimize`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from .config import CONV_ALGORITHMS, PAPER, TransferConfig, fast_mode
from .features import VGG19Features
from .images import ImageSource, load_image, resize
from .layers import check_layers, deepest
from .losses import content_loss, gram_matrix, style_loss, tv_loss
from .optimize import Callback, OptimizeResult, StepInfo, optimize

#: Standard deviation of the white-noise initialisation around mid-grey, in [0, 1] pixel units.
NOISE_STD = 0.01


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; ``"cuda"`` without a GPU is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    return dev


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 convolutions natively (emulated bf16 is slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` (None means plain float32).

    ``"auto"`` is bfloat16 where the hardware runs it natively, else float32; in fast mode
    (``NST_FAST=1``: the notebooks' regression tests) it is always float32, so the numbers
    those tests compare do not depend on the machine's instruction set.
    """
    if precision == "float32":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    if precision == "auto":
        return torch.bfloat16 if native_bfloat16(device) and not fast_mode() else None
    raise ValueError(f"unknown precision {precision!r}; expected one of auto, float32, bfloat16")


def make_extractor(
    layers: Iterable[str],
    *,
    weights: str = PAPER.weights,
    pooling: str = PAPER.pooling,
    device: str | torch.device = "cpu",
    precision: str = PAPER.precision,
    seed: int = 0,
    conv_algorithm: str = PAPER.conv_algorithm,
) -> VGG19Features:
    """A frozen VGG-19 truncated after the deepest of ``layers``, on ``device``.

    ``conv_algorithm``: ``"direct"`` (PyTorch's convolutions), ``"winograd"`` (Winograd
    F(4x4, 3x3) for the layers from conv3_1 on, where their maps are 16 px or more, see
    :mod:`.winograd`) or ``"auto"``: Winograd for float32 on the CPU, where it measured 1.1-1.3x
    faster per step than direct at 256-512 px (``benchmarks/results.md``,
    ``results_per_step.md``); direct on CUDA (cuDNN chooses its own
    algorithms, Winograd among them), under reduced-precision autocast (Winograd's transforms
    amplify bfloat16's rounding) and in fast mode.
    """
    dev = resolve_device(device)
    extractor = VGG19Features(
        weights, pooling, last_layer=deepest(list(layers)), seed=seed,
        channels_last=dev.type == "cpu", autocast_dtype=resolve_precision(precision, dev),
        winograd=resolve_winograd(conv_algorithm, precision, dev),
    )
    return extractor.to(dev)


def resolve_winograd(conv_algorithm: str, precision: str, device: torch.device) -> bool:
    """Whether ``conv_algorithm`` means Winograd for this precision and device (see :func:`make_extractor`)."""
    if conv_algorithm not in CONV_ALGORITHMS:
        raise ValueError(f"unknown conv_algorithm {conv_algorithm!r}; expected one of {', '.join(CONV_ALGORITHMS)}")
    if conv_algorithm == "auto":
        # Fast mode (the notebooks' regression tests) keeps the direct convolutions, as it keeps
        # float32: Winograd's ~1e-5 differences move the third digit of the printed losses
        # after a few L-BFGS steps, and the checked outputs must not depend on the machine.
        return device.type == "cpu" and resolve_precision(precision, device) is None and not fast_mode()
    return conv_algorithm == "winograd"


@torch.no_grad()
def content_targets(extractor: VGG19Features, image: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
    """``P^l`` for each content layer, computed once."""
    return dict(extractor(image, layers))


@torch.no_grad()
def style_targets(extractor: VGG19Features, image: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
    """``A^l`` (Gram matrices) for each style layer, computed once."""
    return {name: gram_matrix(f) for name, f in extractor(image, layers).items()}


@dataclass
class StyleTransferObjective:
    """``alpha * L_content + beta * L_style + tv_weight * TV`` as weighted terms (paper eq. 7).

    The weights are plain attributes read at every evaluation, so a caller may change them
    between runs of the loop (the interactive panel restarts the optimiser when it does).
    """

    extractor: VGG19Features
    content_targets: Mapping[str, Tensor]
    style_targets: Mapping[str, Tensor]
    content_weight: float = PAPER.content_weight
    style_weight: float = PAPER.style_weight
    style_layer_weights: Mapping[str, float] = field(default_factory=dict)
    tv_weight: float = 0.0

    def __post_init__(self) -> None:
        if not self.style_layer_weights and self.style_targets:
            self.style_layer_weights = {n: 1.0 / len(self.style_targets) for n in self.style_targets}

    def layers(self) -> list[str]:
        return list(dict.fromkeys([*self.content_targets, *self.style_targets]))

    def __call__(self, image: Tensor) -> dict[str, Tensor]:
        feats = self.extractor(image, self.layers())
        terms: dict[str, Tensor] = {}
        if self.content_targets:
            lc = sum(content_loss(feats[n], p) for n, p in self.content_targets.items())
            terms["content"] = self.content_weight * lc
        if self.style_targets:
            terms["style"] = self.style_weight * style_loss(feats, self.style_targets, self.style_layer_weights)
        if self.tv_weight:
            terms["tv"] = self.tv_weight * tv_loss(image)
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
    around mid-grey, drawn from a seeded CPU generator so every device starts from the same
    image. Full-range uniform noise reaches the same loss (measured at 128 px, 80 steps) but
    leaves more high-frequency speckle after a few hundred steps.
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


def reconstruct_content(
    image: Tensor,
    layer: str,
    *,
    extractor: VGG19Features,
    steps: int = 200,
    optimizer: str = "lbfgs",
    init: str | Tensor = "noise",
    seed: int = 0,
    callbacks: Iterable[Callback] = (),
    **optimizer_options: float,
) -> OptimizeResult:
    """Paper Fig. 1, content row: an image whose ``layer`` features match ``image``'s (eq. 1)."""
    (layer,) = check_layers([layer], "content layer")
    objective = StyleTransferObjective(extractor, content_targets(extractor, image, [layer]), {}, content_weight=1.0)
    start = initial_image(init, content=image, seed=seed)
    return optimize(objective, start, steps=steps, optimizer=optimizer, callbacks=callbacks, **optimizer_options)


def synthesize_texture(
    style: Tensor,
    layers: Iterable[str],
    *,
    extractor: VGG19Features,
    layer_weights: Mapping[str, float] | None = None,
    shape: tuple[int, ...] | None = None,
    steps: int = 200,
    optimizer: str = "lbfgs",
    init: str | Tensor = "noise",
    seed: int = 0,
    callbacks: Iterable[Callback] = (),
    **optimizer_options: float,
) -> OptimizeResult:
    """Paper Fig. 1, style row: a texture from noise matching ``style``'s Gram matrices (eq. 5).

    ``layer_weights`` default to equal weights ``1 / len(layers)``; ``shape`` defaults to the
    style image's.
    """
    layers = check_layers(layers, "style layer")
    weights = dict(layer_weights) if layer_weights else {n: 1.0 / len(layers) for n in layers}
    objective = StyleTransferObjective(
        extractor, {}, style_targets(extractor, style, layers), style_weight=1.0, style_layer_weights=weights
    )
    start = initial_image(init, style=style, shape=shape or tuple(style.shape), seed=seed)
    return optimize(objective, start, steps=steps, optimizer=optimizer, callbacks=callbacks, **optimizer_options)


@dataclass
class TransferResult(OptimizeResult):
    config: TransferConfig = PAPER
    content: Tensor | None = None
    style: Tensor | None = None
    #: The memory estimate checked before the run (bytes; see :mod:`nst_utils.memory`).
    estimated_memory: int | None = None


def load_pair(
    content: ImageSource | Tensor, style: ImageSource | Tensor, config: TransferConfig, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Content at ``config.size`` (longest side); style at the content's exact size (the paper)
    or, with ``style_scale="own"``, at its own aspect with the same longest side."""
    c = content if isinstance(content, Tensor) else load_image(content, config.size)
    if isinstance(content, Tensor) and max(c.shape[-2:]) != config.size:
        c = resize(c, config.size)
    style_size = tuple(c.shape[-2:]) if config.style_scale == "content" else config.size
    s = style if isinstance(style, Tensor) else load_image(style, style_size)
    s = resize(s, style_size)
    return c.to(device), s.to(device)


def build_objective(
    config: TransferConfig, extractor: VGG19Features, content: Tensor, style: Tensor
) -> StyleTransferObjective:
    return StyleTransferObjective(
        extractor,
        content_targets(extractor, content, config.content_layers),
        style_targets(extractor, style, config.style_layers),
        content_weight=config.content_weight,
        style_weight=config.style_weight,
        style_layer_weights=config.layer_weights(),
        tv_weight=config.tv_weight,
    )


def _offset(callback: Callback, steps_before: int) -> Callback:
    """Renumber a level's steps so callbacks see one continuous run across pyramid levels."""
    if not steps_before:
        return callback
    return lambda info: callback(replace(info, step=info.step + steps_before))


def transfer(
    content: ImageSource | Tensor,
    style: ImageSource | Tensor,
    config: TransferConfig = PAPER,
    *,
    extractor: VGG19Features | None = None,
    callbacks: Iterable[Callback] = (),
) -> TransferResult:
    """Paper sec. 3: an image with ``content``'s features on the content layers and
    ``style``'s Gram matrices on the style layers, weighted ``alpha/beta = config.ratio``.

    With ``config.pyramid`` (coarse-to-fine, as in Gatys et al. 2017), the run first optimises
    at the smaller sizes, each level starting from the previous result upsampled; content and
    style are downsampled from their full-size versions, so targets match at every level.
    """
    from .memory import check_memory

    device = resolve_device(config.device)
    c_full, s_full = load_pair(content, style, config, device)  # bad images fail before the network loads
    # Refuse a run that cannot fit before allocating anything large (raises with the largest size that fits).
    estimate = check_memory(
        tuple(c_full.shape[-2:]), content_layers=config.content_layers, style_layers=config.style_layers,
        optimizer=config.optimizer, lbfgs_history=config.lbfgs_history, precision=config.precision, device=device,
        conv_algorithm=config.conv_algorithm,
    )
    if extractor is None:
        extractor = make_extractor(
            [*config.content_layers, *config.style_layers], weights=config.weights,
            pooling=config.pooling, device=device, precision=config.precision, seed=config.seed,
            conv_algorithm=config.conv_algorithm,
        )
    callbacks = list(callbacks)
    image: Tensor | None = None
    history: list[StepInfo] = []
    result: OptimizeResult | None = None
    evaluations, seconds = 0, 0.0
    for size, steps in config.levels():
        c = c_full if size == config.size else resize(c_full, size)
        s = resize(s_full, tuple(c.shape[-2:]) if config.style_scale == "content" else size)
        objective = build_objective(config, extractor, c, s)
        if image is None:
            start = initial_image(config.init, content=c, style=s, seed=config.seed, device=device)
        else:
            start = resize(image, tuple(c.shape[-2:]))
        result = optimize(
            objective, start, steps=steps, optimizer=config.optimizer, lbfgs_history=config.lbfgs_history,
            adam_lr=config.adam_lr, callbacks=[_offset(cb, len(history)) for cb in callbacks],
        )
        image = result.image
        history += [replace(h, step=h.step + len(history)) for h in result.history]
        evaluations, seconds = evaluations + result.evaluations, seconds + result.seconds
        if result.stopped:
            break
    assert result is not None and image is not None
    if tuple(image.shape) != tuple(c_full.shape):  # stopped at a coarse level
        image = resize(image, tuple(c_full.shape[-2:]))
    return TransferResult(
        image=image, history=history, best_total=result.best_total, stopped=result.stopped,
        evaluations=evaluations, seconds=seconds, config=config, content=c_full, style=s_full,
        estimated_memory=estimate,
    )
