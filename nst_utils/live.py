"""Settings that change during a run: the interactive panel's level optimiser.

A fixed config runs each level with one call of the optimiser (:func:`nst_utils.loop.optimise_level`).
The panel lets a learner move the α/β slider, tick layers or change the steps *while* the image is
being optimised. :class:`LiveSettings` wraps the same per-level optimisation: at every step it reads
the current settings, and the step says why the segment must end:

* ``"restart"``: the objective changed (α/β, layers, their weights, TV, the optimiser). L-BFGS'
  curvature pairs describe the old objective, so the optimiser starts afresh from the best image
  so far, in a new segment (the panel draws a dotted line there);
* ``"steps lowered"``: the last level's step slider went below the steps already taken.

Raising the steps lets the last level run on, in a new segment. Sizes, the initialisation and the
schedule stay those the run started with.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from . import engine
from .config import TransferConfig
from .loop import LevelInputs, RunRecord
from .optimize import Callback, OptimizeResult, Plateau, StepInfo, optimize

__all__ = ["LiveSettings", "objective_settings"]


def objective_settings(cfg: TransferConfig) -> tuple:
    """The settings that define the objective and the optimiser: a change mid-run restarts it."""
    weights = tuple(cfg.layer_weights().items()) if cfg.style_layers else ()
    return (cfg.ratio, cfg.style_weight, cfg.content_layers, cfg.style_layers, weights, cfg.tv_weight,
            cfg.optimizer, cfg.lbfgs_history, cfg.adam_lr)


class LiveSettings:
    """A level optimiser for :func:`nst_utils.loop.run` that follows ``settings()`` (e.g. the
    panel's widgets) during the run."""

    def __init__(self, settings: Callable[[], TransferConfig]) -> None:
        self.settings = settings

    def current(self, running: TransferConfig) -> TransferConfig:
        """The settings now, with the run's sizes, initialisation and schedule."""
        return self.settings().replace(size=running.size, init=running.init, pyramid=running.pyramid,
                                       pyramid_steps=running.pyramid_steps)

    def __call__(self, config: TransferConfig, inputs: LevelInputs, start: Tensor, steps: int,
                 record: RunRecord) -> OptimizeResult:
        """Optimise one level in segments until its steps are done, it converges, or the run stops."""
        final = record.level == record.last_level
        done, image, cfg = 0, start, config
        out: OptimizeResult | None = None
        while out is None or out.stopped in ("restart", None):
            cfg = self.current(cfg)
            planned = (cfg.steps if final else steps) - done
            if planned < 1:  # never on the first pass: steps are at least 1
                break
            _deep_enough(inputs, cfg, record)
            objective = inputs.objective(cfg)
            out = optimize(
                objective, image, steps=planned, optimizer=cfg.optimizer, lbfgs_history=cfg.lbfgs_history,
                adam_lr=cfg.adam_lr, plateau=Plateau(cfg.plateau_tol, cfg.plateau_window),
                callbacks=[record.segment(cfg, inputs.shape, objective),
                           self._watch(cfg, done, planned, final)],
            )
            record.end_segment(out)
            done, image = done + out.steps, out.image
        assert out is not None
        return out

    def _watch(self, running: TransferConfig, done: int, planned: int, final: bool) -> Callback:
        """The step callback of a segment that starts after ``done`` steps of its level and plans
        ``planned`` more: it ends the segment when the settings change."""
        def watch(info: StepInfo) -> str | None:  # info.step counts the segment's own steps
            now = self.current(running)
            if final and now.steps < done + planned and done + info.step >= now.steps:
                return "steps lowered"
            if objective_settings(now) != objective_settings(running):
                return "restart"
            return None

        return watch


def _deep_enough(inputs: LevelInputs, cfg: TransferConfig, record: RunRecord) -> None:
    """Rebuild the network when the new settings read a layer deeper than it goes."""
    layers = [*cfg.content_layers, *cfg.style_layers]
    if layers and not set(layers) <= set(inputs.extractor.layer_names):
        inputs.extractor = record.extractor = engine.build_extractor(cfg, layers)
