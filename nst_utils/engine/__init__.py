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
what it used through :func:`peak_memory`. A face that runs what it forecast builds the network for
the forecast's machine (``build_extractor(config, machine=said.machine)``) and passes it to the
run, whose :func:`prepare` checks it instead of planning the machine again.

Why they exist, with the measured gain of each, is in the README ("Architecture") and
``benchmarks/results.md``. The heavy rooms are imported only when a run needs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..config import TransferConfig
from ..features import VGG19Features
from .hardware import Machine, plan
from .network import build_extractor, check_extractor, machine_of

__all__ = ["Forecast", "Machine", "Prepared", "build_extractor", "check_extractor", "forecast", "machine_of",
           "peak_memory", "plan", "prepare"]


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
