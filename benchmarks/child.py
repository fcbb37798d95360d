"""One measured run per process: ``python -m benchmarks.child '<json spec>'`` prints one JSON line.

Peak RSS is a process high-water mark, so each (implementation, size, precision) runs in a
fresh process; the parent (:mod:`benchmarks.__main__`) collects the JSON lines.

Spec keys: ``impl`` (``"nst"``, ``"naive"`` or ``"memory"``), ``size``, ``steps`` (timed steps),
``warmup`` (steps left out of the median), ``precision`` and ``conv_algorithm`` (nst only), ``device``,
``quality_steps`` (naive: steps whose best loss becomes the quality threshold), ``threshold``
and ``max_steps`` (nst: keep going until the judged loss is at or below ``threshold``).

``s_per_eval`` is the median of :data:`EVAL_REPEATS` evaluations (forward + image gradient) timed
on their own after the run, at its final image. Time per step excludes the judge (a float32
evaluation of ``nst_utils``' objective, only needed for reduced-precision runs; a float32 run's
own loss *is* the judge's value). Times start when
the optimisation starts: building the network and the targets is reported as ``setup_s``.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, Self

import torch
from torch import Tensor

import nst_utils as nst
from nst_utils.device import resolve_device
from nst_utils.engine import machine_of
from nst_utils.engine.memory import peak_private_memory
from nst_utils.images import load_image
from nst_utils.objective import MatchingObjective, content_targets, style_targets
from nst_utils.optimize import _Tracker
from nst_utils.recipes import make_extractor

from . import naive

CONTENT, STYLE = "hopper", "swirls"


def bench_images(size: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """The content and style images, square ``size`` x ``size`` (the FLOP count assumes a square)."""
    return load_image(CONTENT, (size, size), device=device), load_image(STYLE, (size, size), device=device)


def bench_config(
    size: int, steps: int, precision: str | None = None, device: str = "cpu"
) -> nst.TransferConfig:
    """The paper's settings (``nst.PAPER``) at ``size`` for ``steps``; precision as given or the default."""
    return nst.PAPER.replace(size=size, steps=steps, device=device,
                             precision=precision or nst.PAPER.precision)


def bench_objective(
    config: nst.TransferConfig, extractor: nst.VGG19Features, content: Tensor, style: Tensor
) -> MatchingObjective:
    """``nst_utils``' objective for ``config`` with its targets from ``content`` and ``style``: the
    function a run minimises, evaluated on its own (timing, judging reduced-precision runs)."""
    return MatchingObjective(
        extractor,
        content_targets(extractor, content, config.content_layers),
        style_targets(extractor, style, config.style_layers),
        content_weight=config.content_weight,
        style_weight=config.style_weight,
        style_layer_weights=config.layer_weights(),
        tv_weight=config.tv_weight,
    )


def peak_memory_bytes(device: torch.device) -> int:
    """``max_memory_allocated`` on CUDA, else this process's peak private resident memory
    (``peak_private_memory``)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return peak_private_memory()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_step(times: list[float], warmup: int) -> float | None:
    steps = [b - a for a, b in zip([0.0, *times], times)][warmup:]
    return statistics.median(steps) if steps else None


def _median_outside(times: list[float], evals: list[float], warmup: int) -> float | None:
    """Median per-step time spent outside the objective's evaluations (the optimiser's own work)."""
    steps = [(b - a) - (e - d) for a, b, d, e in zip([0.0, *times], times, [0.0, *evals], evals)][warmup:]
    return statistics.median(steps) if steps else None


class EvaluationClock:
    """Adds up the time spent evaluating the objective and its image gradient inside a run
    (``_Tracker.evaluate`` plus ``torch.autograd.grad``, which every optimiser path calls), so a
    step's time splits into the evaluation and the optimiser's own work."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds = device, 0.0

    def wrap(self, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            _sync(self.device)
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            _sync(self.device)
            self.seconds += time.perf_counter() - start
            return out

        return timed

    def __enter__(self) -> Self:
        self._saved = _Tracker.evaluate, torch.autograd.grad
        _Tracker.evaluate = self.wrap(self._saved[0])
        torch.autograd.grad = self.wrap(self._saved[1])
        return self

    def __exit__(self, *exc) -> None:
        _Tracker.evaluate, torch.autograd.grad = self._saved


def _time_to(times: list[float], losses: list[float], threshold: float | None) -> float | None:
    if threshold is None:
        return None
    return next((t for t, value in zip(times, losses) if value <= threshold), None)


#: Standalone evaluations timed after each run (their median is ``s_per_eval``).
EVAL_REPEATS = 5


def time_evaluation(
    evaluate: Callable[[], object], device: torch.device, repeats: int = EVAL_REPEATS
) -> float:
    """Median wall time of ``evaluate()`` (one forward + image-gradient backward), run ``repeats`` times.

    A step also holds the optimiser's own work (scipy's L-BFGS-B update is O(history x pixels)
    in Python's process, single-threaded); this isolates what the FLOP floor describes.
    """
    times = []
    for _ in range(repeats):
        _sync(device)
        begin = time.perf_counter()
        evaluate()
        _sync(device)
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def run_nst(spec: dict[str, Any]) -> dict[str, Any]:
    """``nst.transfer`` with the paper's defaults (L-BFGS-B, history 20) at ``spec["size"]``.

    With ``spec["pyramid"]`` (coarse sizes) and ``spec["pyramid_steps"]`` it runs coarse-to-fine:
    the clock then starts when the first (coarse) level starts and covers every level's setup,
    and steps and losses are those of the full-size level only.
    """
    device = resolve_device(spec.get("device", "cpu"))
    threshold, steps = spec.get("threshold"), int(spec["steps"])
    max_steps = max(steps, int(spec.get("max_steps") or steps)) if threshold is not None else steps
    cfg = bench_config(int(spec["size"]), max_steps, spec.get("precision"), device.type)
    cfg = cfg.replace(conv_algorithm=spec.get("conv_algorithm", "auto"),
                      optimizer=spec.get("optimizer", cfg.optimizer))
    pyramid = tuple(spec.get("pyramid") or ())
    if pyramid:
        cfg = cfg.replace(pyramid=pyramid, pyramid_steps=int(spec.get("pyramid_steps") or 0))
    t0 = time.perf_counter()
    content, style = bench_images(cfg.size, device)
    extractor = make_extractor(cfg)
    ran = machine_of(extractor)
    judge = None
    if extractor.autocast_dtype is not None:  # a float32 view of the same network judges quality
        judge_extractor = copy.copy(extractor)
        judge_extractor.autocast_dtype = None
        judge = bench_objective(cfg, judge_extractor, content, style)
    setup = time.perf_counter() - t0
    times: list[float] = []
    evals: list[float] = []
    losses: list[float] = []
    judged = [0.0]
    clock = EvaluationClock(device)
    full = tuple(content.shape)
    start = [0.0]

    def record(info: nst.StepInfo) -> bool:
        if info.image is None or tuple(info.image.shape) != full:
            return False  # a coarse level: neither timed as a step nor judged
        _sync(device)
        # info.elapsed restarts with each level; a pyramid run is timed from its first level.
        times.append((time.perf_counter() - start[0] if pyramid else info.elapsed) - judged[0])
        evals.append(clock.seconds)
        if judge is None:
            losses.append(info.total)
        else:
            begin = time.perf_counter()
            with torch.no_grad():
                losses.append(float(sum(judge(info.image).values())))
            judged[0] += time.perf_counter() - begin
        done_timing = len(times) >= steps
        return done_timing and (threshold is None or losses[-1] <= threshold)

    with clock:
        start[0] = time.perf_counter()
        result = nst.transfer(content, style, cfg, extractor=extractor, callbacks=[record])
    peak = peak_memory_bytes(device)  # the run's peak, before the evaluations timed below
    objective = bench_objective(cfg, extractor, content, style)
    image = result.image.detach().requires_grad_(True)

    def evaluate() -> None:
        torch.autograd.grad(sum(objective(image).values()), image)

    return {
        "impl": "nst", "precision": cfg.precision, "winograd": ran.conv_algorithm == "winograd",
        "pyramid": list(pyramid), "pyramid_steps": cfg.pyramid_steps if pyramid else None,
        "dtype": ran.precision,
        "size": cfg.size, "setup_s": setup, "steps_run": len(times), "evaluations": result.evaluations,
        "s_per_step": _median_step(times[:steps], int(spec.get("warmup", 1))),
        "s_outside_eval_per_step": _median_outside(times[:steps], evals[:steps], int(spec.get("warmup", 1))),
        "optimizer": cfg.optimizer,
        "s_per_eval": time_evaluation(evaluate, device),
        "evals_per_step": result.evaluations / max(len(result.history), 1),
        "final_loss": losses[-1] if losses else None, "best_loss": min(losses, default=None),
        "threshold": threshold, "time_to_quality_s": _time_to(times, losses, threshold),
        "run_s": times[-1] if times else None,
        "peak_bytes": peak, "device": device.type,
    }


def run_naive(spec: dict[str, Any]) -> dict[str, Any]:
    """The tutorial-style reference (:mod:`.naive`) on the same images, weights and layers."""
    device = resolve_device(spec.get("device", "cpu"))
    steps, quality = int(spec["steps"]), int(spec.get("quality_steps") or 0)
    cfg = bench_config(int(spec["size"]), max(steps, quality), "float32", device.type)
    t0 = time.perf_counter()
    content, style = bench_images(cfg.size, device)
    model, content_losses, style_losses = naive.build_model(
        content, style, cfg.content_layers, cfg.style_layers, cfg.pooling)
    model.to(device)
    image = nst.initial_image(cfg.init, content=content, seed=cfg.seed, device=device)
    setup = time.perf_counter() - t0
    times: list[float] = []
    losses: list[float] = []
    start = time.perf_counter()

    def record(count: int, loss: float) -> bool:
        _sync(device)
        times.append(time.perf_counter() - start)
        losses.append(loss)
        return False

    final = naive.run_style_transfer(model, content_losses, style_losses, image, steps=cfg.steps,
                                     content_weight=cfg.content_weight, style_weight=cfg.style_weight,
                                     on_evaluation=record)
    peak = peak_memory_bytes(device)
    final.requires_grad_(True)

    def evaluate() -> None:  # the reference's closure without its optimiser
        model(final)
        naive.total_loss(content_losses, style_losses, cfg.content_weight, cfg.style_weight).backward()
        final.grad = None
    threshold = min(losses[:quality]) if quality else None
    return {
        "impl": "naive", "precision": "float32", "winograd": False, "dtype": "float32", "size": cfg.size,
        "setup_s": setup,
        "steps_run": len(times), "evaluations": len(times), "first_loss": losses[0] if losses else None,
        "s_per_step": _median_step(times[:steps], int(spec.get("warmup", 1))), "evals_per_step": 1.0,
        "s_per_eval": time_evaluation(evaluate, device),
        "final_loss": losses[-1] if losses else None, "best_loss": min(losses, default=None),
        "threshold": threshold, "quality_steps": quality,
        "time_to_quality_s": _time_to(times, losses, threshold),
        "peak_bytes": peak, "device": device.type,
    }


def run_memory(spec: dict[str, Any]) -> dict[str, Any]:
    """Peak memory of a plain ``nst.transfer`` run (extractor built inside) for calibration."""
    device = resolve_device(spec.get("device", "cpu"))
    cfg = bench_config(int(spec["size"]), int(spec["steps"]), spec.get("precision"), device.type)
    cfg = cfg.replace(lbfgs_history=int(spec.get("lbfgs_history", cfg.lbfgs_history)),
                      optimizer=spec.get("optimizer", cfg.optimizer))
    content, style = bench_images(cfg.size, device)
    result = nst.transfer(content, style, cfg)
    return {"impl": "memory", "size": cfg.size, "steps": cfg.steps, "precision": cfg.precision,
            "optimizer": cfg.optimizer, "lbfgs_history": cfg.lbfgs_history,
            "winograd": result.machine.conv_algorithm == "winograd",
            "peak_bytes": peak_memory_bytes(device), "device": device.type}


RUNNERS = {"nst": run_nst, "naive": run_naive, "memory": run_memory}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    result = RUNNERS[spec["impl"]](spec)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
