"""The run loop: for each level of the coarse-to-fine schedule, build the objective and optimise.

Every run of the package goes through :func:`run`: the three experiments of :mod:`.recipes`, the
command line and the interactive panel. For a fixed config it is a plain loop over the levels of
``config.levels()`` (Gatys et al. 2017's coarse-to-fine; one level when ``pyramid=()``): scale the
inputs to the level, start from the previous level's result upsampled (or from ``config.init``),
compute the targets, optimise until the level's steps are done or the loss stops improving.

Around that loop it adds what every real run needs, in one place: the engine room
(:mod:`nst_utils.engine`) checks the memory and builds the extractor before anything large is
allocated, and the step history is kept across levels, each step reported to the callbacks with
one continuous step count. The interactive panel swaps in a level optimiser that restarts when a
slider moves (:mod:`.live`); nothing else changes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import torch
from torch import Tensor

from . import engine
from .config import DEFAULT, TransferConfig, blend_weights
from .features import VGG19Features
from .images import resize, target_size
from .masks import check_masks
from .objective import MatchingObjective, build_objective, content_targets, initial_image, style_grams
from .optimize import Callback, OptimizeResult, Plateau, StepInfo, optimize
from .version import __version__

__all__ = ["LevelInputs", "LevelOptimiser", "RunRecord", "RunResult", "Segment", "optimise_level", "run"]

#: Reasons a level ended that end the whole run: a callback (the Stop button) or Ctrl-C.
RUN_ENDERS = ("callback", "interrupted")


@dataclass
class Segment:
    """One uninterrupted call of :func:`~nst_utils.optimize` within a run: one per level, and a
    new one each time the panel's settings restart the optimiser."""

    index: int
    level: int
    first_step: int
    config: TransferConfig
    shape: tuple[int, int]
    steps: int = 0
    evaluations: int = 0
    stopped: str | None = None
    best_total: float = math.inf

    def to_dict(self) -> dict[str, Any]:
        cfg = self.config
        return {"level": self.level, "first_step": self.first_step, "steps": self.steps,
                "height": self.shape[0], "width": self.shape[1], "stopped": self.stopped,
                "ratio": cfg.ratio, "content_layers": cfg.content_layers,
                "style_layer_weights": cfg.layer_weights() if cfg.style_layers else {},
                "tv_weight": cfg.tv_weight, "optimizer": cfg.optimizer}


@dataclass
class RunResult(OptimizeResult):
    """A finished run: the best image of its last segment, the step history across levels and
    restarts, the settings (``config``, as they were in the last segment) and what ran
    (``machine``: device, precision, convolution algorithm)."""

    config: TransferConfig = DEFAULT
    content: Tensor | None = None
    style: Tensor | None = None
    #: The memory estimate checked before the run (bytes; see :func:`nst_utils.engine.forecast`).
    estimated_memory: int | None = None
    machine: engine.Machine | None = None
    segments: list[Segment] = field(default_factory=list)
    #: The network the run used, so a caller can reuse it for the next run.
    extractor: VGG19Features | None = field(default=None, repr=False)

    def levels(self) -> list[dict[str, Any]]:
        """The coarse-to-fine levels that ran: size, steps taken, and why each ended."""
        out: dict[int, dict[str, Any]] = {}
        for s in self.segments:
            level = out.setdefault(s.level, {"height": s.shape[0], "width": s.shape[1], "steps": 0})
            level["steps"] += s.steps
            level["stopped"] = s.stopped
        return list(out.values())

    def metadata(self) -> dict[str, Any]:
        """What to store with the image: the settings, what actually ran, and how it went."""
        return {
            "nst_utils": __version__, "torch": torch.__version__, "config": self.config.to_dict(),
            "ran": self.machine.to_dict() if self.machine else {}, "steps": self.steps,
            "evaluations": self.evaluations, "stopped": self.stopped,
            "final_loss": self.history[-1].losses if self.history else {},
            "levels": self.levels(), "segments": [s.to_dict() for s in self.segments],
        }


@dataclass
class LevelInputs:
    """The images of one level, on the run's device: ``content`` (or None), the ``styles``, the
    region ``masks`` of the output (one per style, or None) and each style's own mask (or None),
    with the target computation cached per layer (the panel may ask for other layers mid-run)."""

    shape: tuple[int, int]
    content: Tensor | None
    styles: list[Tensor]
    masks: list[Tensor] | None
    style_masks: list[Tensor | None] | None
    extractor: VGG19Features
    _content: dict[str, Tensor] = field(default_factory=dict, repr=False)
    _style: dict[str, Tensor] = field(default_factory=dict, repr=False)

    def objective(self, config: TransferConfig) -> MatchingObjective:
        """The objective of ``config`` at this level, computing the targets it lacks."""
        missing = [n for n in config.content_layers if n not in self._content]
        if missing and self.content is None:
            raise ValueError(f"content layers {', '.join(missing)} need a content image")
        if missing:
            self._content.update(content_targets(self.extractor, self.content, missing))
        missing = [n for n in config.style_layers if n not in self._style]
        if missing and not self.styles:
            raise ValueError(f"style layers {', '.join(missing)} need a style image")
        if missing:
            own = None if self.masks is None else self.style_masks or [None] * len(self.styles)
            self._style.update(style_grams(self.extractor, self.styles, missing, self.shape, config, own))
        return build_objective(config, self.extractor, self._content, self._style, self.masks)


class LevelOptimiser(Protocol):
    """Optimises one level: what :func:`run` calls for each of them (:func:`optimise_level`, or the
    panel's restarting one in :mod:`.live`)."""

    def __call__(self, config: TransferConfig, inputs: LevelInputs, start: Tensor, steps: int,
                 record: RunRecord) -> OptimizeResult: ...


def run(
    config: TransferConfig,
    *,
    content: Tensor | None = None,
    style: Tensor | Sequence[Tensor] | None = None,
    shape: tuple[int, int] | None = None,
    masks: Sequence[Tensor] | None = None,
    style_masks: Sequence[Tensor | None] | None = None,
    extractor: VGG19Features | None = None,
    callbacks: Iterable[Callback] = (),
    optimise: LevelOptimiser | None = None,
) -> RunResult:
    """Optimise an image of ``shape`` (default: the content's, else the style's) against
    ``content`` (for the content layers) and ``style`` (the style layers), level by level.

    ``style`` may be a list: its Gram matrices are mixed with ``config.style_blend``, or, with
    ``masks`` (one mask of ``shape`` per style), each style matches its own region of the output
    (Gatys et al. 2017), optionally only a region of its own image (``style_masks``, ``None`` for
    the whole painting). Styles may have any size (see :func:`~nst_utils.objective.style_grams`).

    Callbacks see one continuous step count; one returning True stops the run, as does Ctrl-C;
    either way the best image so far is returned. ``optimise`` replaces :func:`optimise_level`
    (the panel's live settings, :mod:`.live`).
    """
    styles = [] if style is None else list(style) if isinstance(style, (list, tuple)) else [style]
    shape = _check_inputs(config, content, styles, shape, masks)
    prepared = engine.prepare(config, shape, extractor)  # memory checked, network built: once
    optimise = optimise or optimise_level
    record = RunRecord(list(callbacks), len(config.levels()))
    image: Tensor | None = None
    with prepared.running() as watch_heap:
        record.callbacks.append(watch_heap)
        for level, (side, steps) in enumerate(config.levels()):
            # A level's side is relative to config.size; the output may be of another size.
            level_shape = target_size(shape[1], shape[0], round(max(shape) * side / config.size))
            scale = _Scaler(shape, level_shape, prepared.machine.device)
            inputs = LevelInputs(level_shape, scale(content), scale.all(styles), scale.all(masks),
                                 scale.all(style_masks), record.extractor or prepared.extractor)
            if image is None:
                image = initial_image(config.init, content=inputs.content, style=(inputs.styles or [None])[0],
                                      shape=(1, 3, *level_shape), seed=config.seed,
                                      device=prepared.machine.device)
            else:
                image = resize(image, level_shape)  # the coarser level's result, upsampled
            record.level, record.extractor = level, inputs.extractor
            out = optimise(config, inputs, image, steps, record)
            image = out.image
            if out.stopped in RUN_ENDERS:
                break
    return record.result(image, shape, content, styles, prepared)


def optimise_level(config: TransferConfig, inputs: LevelInputs, start: Tensor, steps: int,
                   record: RunRecord) -> OptimizeResult:
    """One level of a fixed config: one call of the optimiser, at most ``steps`` steps, ending
    early when the loss reaches its plateau (``config.plateau_tol`` over ``plateau_window``)."""
    objective = inputs.objective(config)
    out = optimize(
        objective, start, steps=steps, optimizer=config.optimizer, lbfgs_history=config.lbfgs_history,
        adam_lr=config.adam_lr, plateau=Plateau(config.plateau_tol, config.plateau_window),
        callbacks=[record.segment(config, inputs.shape, objective)],
    )
    record.end_segment(out)
    return out


class RunRecord:
    """The run's step history across levels and segments, reported to the caller's callbacks
    with one continuous step count, each step tagged with its level and segment."""

    def __init__(self, callbacks: list[Callback], levels: int) -> None:
        self.callbacks = callbacks
        self.history: list[StepInfo] = []
        self.segments: list[Segment] = []
        #: The level being optimised, and the last one (``levels - 1``).
        self.level, self.last_level = 0, levels - 1
        self.extractor: VGG19Features | None = None
        self.t0 = time.perf_counter()

    def segment(self, config: TransferConfig, shape: tuple[int, int],
                objective: MatchingObjective) -> Callback:
        """Start a segment; returns the step callback to give :func:`~nst_utils.optimize`."""
        segment = Segment(len(self.segments), self.level, len(self.history) + 1, config, shape)
        self.segments.append(segment)

        def on_step(info: StepInfo) -> bool | str | None:
            shares = objective.layer_losses
            values = torch.stack(list(shares.values())).tolist() if shares else []  # one host sync
            info = replace(info, step=segment.first_step + info.step - 1,
                           elapsed=time.perf_counter() - self.t0, layer_losses=dict(zip(shares, values)),
                           level=segment.level, segment=segment.index)
            self.history.append(replace(info, image=None))  # numbers only: images would be gigabytes
            asked = [callback(info) for callback in self.callbacks]  # every callback sees every step
            return next((a for a in asked if a), None)

        return on_step

    def end_segment(self, out: OptimizeResult) -> None:
        segment = self.segments[-1]
        segment.steps, segment.evaluations, segment.stopped = out.steps, out.evaluations, out.stopped
        segment.best_total = out.best_total

    def result(self, image: Tensor | None, shape: tuple[int, int], content: Tensor | None,
               styles: list[Tensor], prepared: engine.Prepared) -> RunResult:
        last = self.segments[-1] if self.segments else None
        best = min((s.best_total for s in self.segments if last and s.level == last.level), default=math.inf)
        stopped = last.stopped if last and last.stopped in RUN_ENDERS else None
        return RunResult(
            image=resize(image, shape), history=self.history, best_total=best, stopped=stopped,
            evaluations=sum(s.evaluations for s in self.segments), seconds=time.perf_counter() - self.t0,
            config=last.config if last else DEFAULT, content=content,
            style=styles[0] if len(styles) == 1 else None,
            estimated_memory=prepared.estimated_memory, machine=prepared.machine, segments=self.segments,
            extractor=self.extractor or prepared.extractor,
        )


def _check_inputs(config: TransferConfig, content: Tensor | None, styles: list[Tensor],
                  shape: tuple[int, int] | None, masks: Sequence[Tensor] | None) -> tuple[int, int]:
    """The output's shape, after the checks that need no network: one line for each problem."""
    if content is None and not styles:
        raise ValueError("run needs a content image, a style image or both")
    shape = tuple(shape or (content if content is not None else styles[0]).shape[-2:])
    if masks is not None:
        check_masks(masks, len(styles))
        if any(tuple(m.shape[-2:]) != shape for m in masks):
            raise ValueError(f"masks must have the output's size {shape[1]}x{shape[0]}")
        if config.style_blend:
            raise ValueError("style blend weights mix styles everywhere; "
                             "with masks each style has its own region")
    elif config.style_blend or len(styles) > 1:
        blend_weights(config, len(styles))  # one weight per style, or a one-line error
    return shape


@dataclass(frozen=True)
class _Scaler:
    """Carries the run's full-size inputs (images, masks) to one level, on the run's device: to the
    level's shape when they have the output's, else scaled by the same factor."""

    shape: tuple[int, int]
    level_shape: tuple[int, int]
    device: torch.device

    def __call__(self, image: Tensor | None) -> Tensor | None:
        if image is None:
            return None
        image = image.to(self.device)
        if self.level_shape == self.shape:
            return image
        if tuple(image.shape[-2:]) == self.shape:
            return resize(image, self.level_shape)
        return resize(image, max(1, round(max(image.shape[-2:]) * max(self.level_shape) / max(self.shape))))

    def all(self, images: Sequence[Tensor | None] | None) -> list[Tensor | None] | None:
        return None if images is None else [self(i) for i in images]
