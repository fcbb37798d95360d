"""How long a run will take on this machine, said before it starts.

A short calibration measures, on this machine, the time of one evaluation (forward through
VGG-19 to relu5_1, the losses, the gradient to the image) at two sizes, and the time to build the
network. It is cached per machine and settings (``$NST_CACHE_DIR`` or ``~/.cache/nst_utils``), so it
runs once. The time of an evaluation is then modelled as an affine function of its work, the
analytic FLOPs of :func:`evaluation_flops` (convolutions and Gram matrices up to the deepest layer
the run reads), and a run's estimate adds, level by level, the evaluations its steps take.

With the stopping rule a level may end before its most steps: how soon depends on the images
and is not known in advance, so the estimate assumes the steps a level of the default schedule
typically takes (:data:`TYPICAL_LEVEL_STEPS`), and gives the longest duration beside it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..config import DEFAULT, TransferConfig
from ..images import target_size
from ..layers import LAYER_CHANNELS, LAYER_INDEX, LAYER_STRIDE, LAYERS
from ..version import __version__
from .hardware import Machine, cpu_model
from .network import build_extractor
from .winograd import winograd_layer, winograd_map

#: The sides (square images) at which the calibration times an evaluation.
CALIBRATION_SIDES = (128, 256)
#: Evaluations per optimiser step, as ``per_step * steps + extra`` per level: the L-BFGS line
#: searches take a few more at the start of each level, SciPy's a few more all along.
EVALUATIONS = {"lbfgs": (1.05, 8), "lbfgs-scipy": (1.25, 5), "adam": (1.0, 1)}


def evaluation_flops(shape: tuple[int, int], content_layers: Iterable[str], style_layers: Iterable[str],
                     winograd: bool = False) -> float:
    """FLOPs of one evaluation on an ``(H, W)`` image: forward through the convolutions up to
    the deepest layer and back to the image (the weights are frozen: no weight gradients), and
    each Gram matrix forward and back. Multiply-add = 2 FLOPs; element-wise work is left out.

    With ``winograd``, a layer computed by Winograd F(4x4, 3x3) counts what that algorithm
    multiplies for ``T = ceil(H/4) ceil(W/4)`` tiles: ``36 C_in C_out T`` in the matrix products,
    plus the input and output transforms as dense matrices.
    """
    h, w = shape
    style_layers = tuple(style_layers)
    last = max(LAYER_INDEX[name] for name in (*content_layers, *style_layers))
    conv, c_in = 0.0, 3
    for name in LAYERS[: last + 1]:
        if name.startswith("conv"):
            s, c_out = LAYER_STRIDE[name], LAYER_CHANNELS[name]
            if winograd and winograd_layer(c_in, c_out) and winograd_map(h // s, w // s):
                tiles = -(-(h // s) // 4) * -(-(w // s) // 4)
                conv += 2 * tiles * (36 * c_in * c_out + 36 * 36 * c_in + 16 * 36 * c_out)
            else:
                conv += 2 * 9 * c_in * c_out * (h // s) * (w // s)
            c_in = c_out
    gram = sum(2 * LAYER_CHANNELS[n] ** 2 * (h // LAYER_STRIDE[n]) * (w // LAYER_STRIDE[n])
               for n in style_layers)
    return 2 * conv + 2 * gram


@dataclass(frozen=True)
class Calibration:
    """This machine's measured costs: building the network, and an evaluation as
    ``fixed + per_gflop * GFLOPs``."""

    build_seconds: float
    fixed: float
    per_gflop: float

    def evaluation_seconds(self, flops: float) -> float:
        return self.fixed + self.per_gflop * flops / 1e9


@dataclass(frozen=True)
class TimeEstimate:
    """The expected duration of a run, in seconds, and the most it can take (every level to its cap)."""

    seconds: float
    at_most: float


def cache_dir() -> Path:
    return Path(os.environ.get("NST_CACHE_DIR") or Path.home() / ".cache" / "nst_utils")


def _cache_key(machine: Machine, config: TransferConfig) -> str:
    device = torch.cuda.get_device_name(machine.device) if machine.device.type == "cuda" else cpu_model()
    return "|".join([__version__, torch.__version__, device, str(torch.get_num_threads()), machine.precision,
                     machine.conv_algorithm, config.padding, _calibration_weights(config)])


def calibration(machine: Machine, config: TransferConfig = DEFAULT) -> Calibration:
    """This machine's :class:`Calibration`: from the cache, else measured (a few seconds) and cached."""
    path, key = cache_dir() / "timing.json", _cache_key(machine, config)
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if key in cached:
        return Calibration(**cached[key])
    measured = measure(machine, config)
    cached[key] = asdict(measured)
    try:  # a read-only home only costs the next run its calibration again
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cached, indent=1))
        tmp.replace(path)
    except OSError:
        pass
    return measured


def measure(machine: Machine, config: TransferConfig = DEFAULT) -> Calibration:
    """Time building the paper's network and its evaluations at :data:`CALIBRATION_SIDES` (the
    fastest of three after one warm-up each, freed memory kept as in a run), and fit the affine model."""
    from ..objective import MatchingObjective, content_targets, style_targets
    from .malloc import keep_freed_memory

    cfg = config.replace(content_layers=DEFAULT.content_layers, style_layers=DEFAULT.style_layers,
                         style_layer_weights=(), network_weights=_calibration_weights(config))
    start = time.perf_counter()
    extractor = build_extractor(cfg, machine=machine)
    build = time.perf_counter() - start
    flops, seconds = [], []
    generator = torch.Generator().manual_seed(0)
    with keep_freed_memory():
        for side in CALIBRATION_SIDES:
            image = torch.rand(1, 3, side, side, generator=generator).to(machine.device)
            objective = MatchingObjective(extractor, content_targets(extractor, image, cfg.content_layers),
                                          style_targets(extractor, image.flip(-1), cfg.style_layers))
            times = [_evaluation_time(objective, image, machine.device) for _ in range(4)][1:]
            flops.append(evaluation_flops((side, side), cfg.content_layers, cfg.style_layers,
                                          machine.conv_algorithm == "winograd"))
            seconds.append(min(times))  # the least disturbed by anything else running
    per_gflop = max(0.0, (seconds[1] - seconds[0]) / ((flops[1] - flops[0]) / 1e9))
    fixed = max(0.0, seconds[0] - per_gflop * flops[0] / 1e9)
    return Calibration(build, fixed, per_gflop)


def _calibration_weights(config: TransferConfig) -> str:
    """The network weights the calibration builds: the run's, except torchvision's, which are never
    downloaded for a calibration (the Caffe network takes as long to evaluate)."""
    return "caffe" if config.network_weights == "torchvision" else config.network_weights


def _evaluation_time(objective, image: torch.Tensor, device: torch.device) -> float:
    x = image.clone().requires_grad_(True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    total = sum(objective(x).values())
    total.backward()
    float(total.detach())  # waits for the device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


#: With the default start and stopping rule, the steps a level typically takes before its loss
#: stops improving (measured on the benchmark's image pairs, ``benchmarks/time_to_picture.md``).
#: Other settings are estimated at their most steps.
TYPICAL_LEVEL_STEPS = 80


def expected_steps(config: TransferConfig, cap: int) -> int:
    """The steps a level with at most ``cap`` is expected to take under ``config``."""
    typical = (config.init == DEFAULT.init and config.plateau_tol == DEFAULT.plateau_tol
               and config.plateau_window == DEFAULT.plateau_window)
    return min(cap, TYPICAL_LEVEL_STEPS) if typical else cap


def estimate_seconds(config: TransferConfig, shape: tuple[int, int], machine: Machine, styles: int = 1,
                     calibrated: Calibration | None = None) -> TimeEstimate:
    """The expected and the longest duration of a run of ``config`` with an output of ``shape``
    ``(H, W)``: building the network, then for each level the targets (one forward pass per image)
    and the evaluations of its steps."""
    cal = calibrated or calibration(machine, config)
    winograd = machine.conv_algorithm == "winograd"
    per_step, extra = EVALUATIONS[config.optimizer]
    expected = at_most = cal.build_seconds
    for side, steps in config.levels():
        level = shape if side == config.size else target_size(shape[1], shape[0], side)
        evaluation = cal.evaluation_seconds(
            evaluation_flops(level, config.content_layers, config.style_layers, winograd))
        targets = (1 + styles) * evaluation / 3  # a forward pass, no backward, no Gram gradients
        expected += targets + evaluation * (per_step * expected_steps(config, steps) + extra)
        at_most += targets + evaluation * (per_step * steps + extra)
    return TimeEstimate(expected, at_most)
