"""The engine room: what makes runs fast on particular hardware, behind one seam.

Nothing in here changes *what* is computed; it changes how fast, and how much memory it takes.
The teaching core (:mod:`nst_utils.recipes`) reaches it only through :func:`prepare` and
:func:`build_extractor` below, so a reader can skip this package entirely. Its rooms:

* :mod:`.hardware`: the device, precision and convolution-algorithm policy (``"auto"`` settings
  resolved for the machine at hand into a :class:`Machine`);
* :mod:`.winograd`: Winograd F(4x4, 3x3) convolutions for VGG-19's deep 3x3 layers on a CPU;
* :mod:`.malloc`: keep freed memory in the process during a run (glibc's malloc on Linux);
* :mod:`.memory`: the peak-memory model, checked before a run allocates anything;
* :mod:`.timing`: how long a run will take, from a short calibration cached per machine.

The faces (the command line, the panel) ask what a run will need through :func:`forecast`, and
what it used through :func:`peak_memory`.

Why they exist, with the measured gain of each, is in the README ("Architecture") and
``benchmarks/results.md``. The heavy rooms are imported only when a run needs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..config import TransferConfig
from ..features import VGG19Features
from ..layers import deepest
from .hardware import Machine, plan

__all__ = ["Forecast", "Machine", "Prepared", "build_extractor", "check_extractor", "forecast", "machine_of",
           "peak_memory", "plan", "prepare"]


def build_extractor(config: TransferConfig, layers: Iterable[str] | None = None,
                    machine: Machine | None = None) -> VGG19Features:
    """The fastest :class:`VGG19Features` for ``config`` on this machine (``machine``, planned
    from the config when not given), truncated after the deepest of ``layers`` (default: the
    config's content and style layers)."""
    machine = machine or plan(config)
    layers = list(layers) if layers is not None else [*config.content_layers, *config.style_layers]
    extractor = VGG19Features(
        config.weights, config.pooling, last_layer=deepest(layers), seed=config.seed, padding=config.padding,
        channels_last=machine.device.type == "cpu", autocast_dtype=machine.autocast_dtype,
    )
    if machine.conv_algorithm == "winograd":
        from .winograd import use_winograd_convolutions

        use_winograd_convolutions(extractor)
    return extractor.to(machine.device)


def machine_of(extractor: VGG19Features) -> Machine:
    """What an existing extractor runs on: its device, precision and convolution algorithm."""
    device = next(extractor.buffers()).device
    precision = "bfloat16" if extractor.autocast_dtype == torch.bfloat16 else "float32"
    return Machine(device, precision, extractor.conv_algorithm)


def check_extractor(extractor: VGG19Features, config: TransferConfig, layers: Iterable[str]) -> Machine:
    """The extractor's :class:`Machine`, or ``ValueError`` naming the first setting in which it
    disagrees with ``config`` (an ``"auto"`` setting agrees with any choice)."""
    machine = machine_of(extractor)
    found = {"weights": extractor.weights, "pooling": extractor.pooling, "padding": extractor.padding,
             "device": machine.device.type,
             "precision": machine.precision, "conv_algorithm": machine.conv_algorithm}
    if config.weights == "random":
        found["seed"] = extractor.seed
    for name, value in found.items():
        wanted = getattr(config, name)
        if name == "conv_algorithm" and value == "direct" and not _has_winograd_layers(extractor):
            continue  # nothing to choose: no layer of this network is one Winograd would compute
        if wanted != "auto" and str(wanted) != str(value):
            raise ValueError(
                f"the extractor was built with {name} {value!r} but the config asks for {wanted!r}; "
                f"build it with make_extractor(config) or set {name}={value!r} in the config"
            )
    last = deepest(list(layers))
    if last not in extractor.layer_names:
        raise ValueError(f"the extractor stops at {extractor.layer_names[-1]!r}, before the layer {last!r}")
    return machine


def _has_winograd_layers(extractor: VGG19Features) -> bool:
    from .winograd import use_winograd

    return any(use_winograd(m) for m in extractor.body)


@dataclass
class Prepared:
    """A run made ready: the :class:`Machine`, the extractor and the memory estimate (bytes)."""

    machine: Machine
    extractor: VGG19Features
    estimated_memory: int

    @contextmanager
    def running(self) -> Iterator[Callable[[object], None]]:
        """For the duration of the loop: keep freed memory in the process (:mod:`.malloc`).
        Yields a step callback that watches the heap (it never asks to stop)."""
        from .malloc import keep_freed_memory

        with keep_freed_memory() as kept:
            yield lambda _info: kept.check()


def prepare(
    config: TransferConfig, shape: tuple[int, int], extractor: VGG19Features | None = None
) -> Prepared:
    """Check that a run of ``config`` on an image of ``shape`` ``(H, W)`` fits in memory (raising
    :class:`.memory.InsufficientMemoryError` with the largest size that fits, before allocating),
    then build the fastest extractor, or check that ``extractor`` agrees with ``config``."""
    from .memory import check_memory

    layers = [*config.content_layers, *config.style_layers]
    machine = plan(config) if extractor is None else check_extractor(extractor, config, layers)
    estimate = check_memory(config, shape, machine)
    if extractor is None:
        extractor = build_extractor(config, layers, machine)
        machine = machine_of(extractor)  # what it runs: a shallow network has no Winograd layer
    return Prepared(machine, extractor, estimate)


@dataclass(frozen=True)
class Forecast:
    """What a run will need, said before it starts: where it runs (``machine``), its peak memory
    (bytes; ``too_large`` says why it would be refused, else None), and its duration (seconds:
    the expected one and the longest, with every level running to its most steps)."""

    machine: Machine
    memory: int
    too_large: str | None
    seconds: float
    at_most: float


def forecast(config: TransferConfig, shape: tuple[int, int] | None = None, styles: int = 1) -> Forecast:
    """The :class:`Forecast` of a run of ``config`` with an output of ``shape`` ``(H, W)`` (default:
    a square of ``config.size``, an upper bound) and ``styles`` style images. The first call on a
    machine measures it (a few seconds, :mod:`.timing`); later calls read the cached numbers."""
    from .memory import InsufficientMemoryError, check_memory, estimate_peak_memory
    from .timing import estimate_seconds

    machine = plan(config)
    shape = shape or (config.size, config.size)
    try:
        memory, too_large = check_memory(config, shape, machine), None
    except InsufficientMemoryError as err:
        memory, too_large = estimate_peak_memory(config, shape, machine), str(err)
    time = estimate_seconds(config, shape, machine, styles)
    return Forecast(machine, memory, too_large, time.seconds, time.at_most)


def peak_memory(device: torch.device | str = "cpu") -> int:
    """The run's measured peak memory so far, in bytes: private memory on a CPU, the allocator's
    peak on a GPU (what the estimates of :func:`forecast` are checked against)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    from .memory import peak_private_memory

    return peak_private_memory()
