"""How much memory a style-transfer run needs, and a check that fails before allocating it.

:func:`estimate_peak_memory` predicts the peak of one run: on the CPU the process's peak
*private* resident memory (``VmHWM - RssFile``, see :func:`peak_private_memory`: the Python +
torch + network footprint included, shared-library pages mapped from disk left out, because
their resident count follows the page cache, not the run), on CUDA
``torch.cuda.max_memory_allocated``. For an image of ``P = H x W`` pixels and ``n = 3 P``
unknowns it adds, in bytes:

* ``BASELINE_CPU``: Python, torch, torchvision, scipy and nst_utils imported, plus the transient
  of building the network (the Caffe file is dequantised in full before it is truncated).
  Measured once (CPU only; CUDA's counter sees no interpreter).
* the network's weights up to the deepest layer used (4 bytes per parameter; a reduced-precision
  autocast keeps a 2-byte copy as well; Winograd layers keep two transformed filter banks,
  8x their weights: about 390 MB for the paper's layers).
* ``ACTIVATION_FACTOR x`` the tensors autograd keeps for the backward pass, per layer up to the
  deepest one used (``LAYER_CHANNELS[l] * P / LAYER_STRIDE[l]^2`` elements each): every ReLU
  and pooling output (convolution outputs are freed once their ReLU has run), the preprocessed
  input, for a content layer ``F - P``, and under reduced precision each tap's float32 copy.
  The factor, fitted to measurements, covers what this count leaves out: the gradients alive
  during the backward pass and the allocator's slack. Most of it is the price of
  :func:`nst_utils.engine.malloc.keep_freed_memory`, which keeps freed blocks in the heap for reuse
  during a run, trading peak memory for time per step (the README's "Architecture" has both).
* the targets: the content features ``P^l`` and the Gram matrices ``A^l`` (``N_l^2`` floats).
* the image in its copies: the float32 image and its gradient, the best image seen, the
  callbacks' copy, and for SciPy its float64 iterate and gradient (``IMAGE_COPIES`` floats per
  unknown, fitted with SciPy's optimiser and kept for both).
* the optimiser: the PyTorch L-BFGS's ``m`` curvature pairs and ``LBFGS_VECTORS`` working vectors
  (``(2m + 8) n`` floats, on the image's device); SciPy L-BFGS-B's float64 workspace,
  ``(2m + 5) n + 11 m^2 + 8 m`` doubles (on CUDA it lives in host memory and is left out); or
  Adam's two moment buffers (``2 n`` floats).

The two fitted constants (``BASELINE_CPU``, ``ACTIVATION_FACTOR``) come from the peak private
memory of real ``nst.transfer`` runs (22 steps, so that the L-BFGS history is full; paper settings,
one fresh process per size).
The runs, the estimate and its error for each are in ``benchmarks/memory_calibration.json``
(regenerate with ``python -m benchmarks --memory-only --sizes 128,256,512,768,1024``; the README
quotes them); ``tests/engine/test_memory.py`` holds the estimate to 15 % of them. A process that
tunes malloc itself (``MALLOC_*`` variables, so the allocator is left alone) peaks lower: the
estimate then errs on the safe side. The baseline was measured with torch's CUDA build from
PyPI; a CPU-only build makes the estimate err on the safe side too. On CUDA the same counts are
used without a measured calibration.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

import torch

from ..config import MAX_SIZE, MIN_SIZE, TransferConfig
from ..layers import LAYER_CHANNELS, LAYER_INDEX, LAYER_STRIDE, LAYERS
from .hardware import Machine, plan
from .winograd import winograd_layer

GIB = 2**30
#: Peak private memory of the interpreter with torch etc. imported and the network built (CPU,
#: fitted to the runs in ``benchmarks/memory_calibration.json``).
BASELINE_CPU = 560 * 2**20
#: Measured peak / counted saved activations (see the module docstring; fitted to the runs in
#: ``benchmarks/memory_calibration.json``).
ACTIVATION_FACTOR = 2.52
#: Float32-sized image copies per unknown besides the optimiser's state (see the docstring).
IMAGE_COPIES = 8
#: Working vectors of :func:`nst_utils.lbfgsb.minimize_in_box` besides its history: the
#: direction, the projected trial point, the previous iterate and gradient, the two-loop's
#: copy, the line search's best point and gradient, the bound masks.
LBFGS_VECTORS = 8
#: Sizes :func:`largest_fitting_size` reports are multiples of this.
SIZE_MULTIPLE = 32


class InsufficientMemoryError(MemoryError, ValueError):
    """The requested run does not fit into the available memory (message: one line)."""


def _shape(config: TransferConfig, shape: tuple[int, int] | None) -> tuple[int, int]:
    # No shape: a square of the config's size, the worst case for an image whose longest side it is.
    height, width = shape if shape is not None else (config.size, config.size)
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    return int(height), int(width)


def _elements(name: str, pixels: float) -> float:
    return LAYER_CHANNELS[name] * pixels / LAYER_STRIDE[name] ** 2


def saved_activation_bytes(pixels: float, content_layers: Iterable[str], style_layers: Iterable[str],
                           activation_bytes: int = 4) -> float:
    """Bytes autograd keeps for backward: ReLU and pool outputs, the input, the taps' copies (if any)."""
    content, style = tuple(content_layers), tuple(style_layers)
    taps = set(content) | set(style)
    last = max(LAYER_INDEX[name] for name in taps)
    total = 4 * 3 * pixels * 4  # image -> BGR -> x255 -> -mean -> channels_last, float32
    for name in LAYERS[: last + 1]:
        if name.startswith(("relu", "pool")):
            total += _elements(name, pixels) * activation_bytes
    for name in taps:
        # A reduced-precision tap is copied to float32 for the losses (the normalisation is in
        # the weights, so a float32 tap is used as it is); a content layer also keeps F - P.
        copies = (activation_bytes != 4) + (name in content)
        total += _elements(name, pixels) * 4 * copies
    return total


def weight_bytes(deepest_layer: str, reduced_precision: bool = False, winograd: bool = False) -> int:
    """The conv weights and biases up to ``deepest_layer`` (plus autocast's 2-byte copies, or the
    Winograd layers' two transformed filter banks: 2 x 36 floats per 3x3 filter)."""
    params, c_in = 0, 3
    for name in LAYERS[: LAYER_INDEX[deepest_layer] + 1]:
        if name.startswith("conv"):
            c_out = LAYER_CHANNELS[name]
            params += 9 * c_in * c_out + c_out
            if winograd and winograd_layer(c_in, c_out):
                params += 2 * 36 * c_in * c_out
            c_in = c_out
    return params * (6 if reduced_precision else 4)


def optimizer_bytes(unknowns: int, optimizer: str, lbfgs_history: int) -> int:
    """The optimiser's state: the PyTorch L-BFGS's ``m`` curvature pairs and its working vectors
    (float32, on the image's device), SciPy L-BFGS-B's float64 workspace, or Adam's two moment
    buffers."""
    m = lbfgs_history
    if optimizer == "adam":
        return 2 * unknowns * 4
    if optimizer == "lbfgs":
        return (2 * m + LBFGS_VECTORS) * unknowns * 4
    return ((2 * m + 5) * unknowns + 11 * m * m + 8 * m) * 8


def estimate_peak_memory(
    config: TransferConfig, shape: tuple[int, int] | None = None, machine: Machine | None = None
) -> int:
    """Estimated peak memory in bytes of a run of ``config`` on an image of ``shape`` ``(H, W)``
    (default: a square of ``config.size``), on ``machine`` (default: :func:`.hardware.plan`).
    On the CPU the result is a peak private RSS, on CUDA a ``torch.cuda.max_memory_allocated``
    (see the module docstring)."""
    machine = machine or plan(config)
    height, width = _shape(config, shape)
    reduced = machine.autocast_dtype is not None
    pixels = height * width
    unknowns = 3 * pixels
    deepest = max((*config.content_layers, *config.style_layers), key=LAYER_INDEX.__getitem__)
    activations = saved_activation_bytes(pixels, config.content_layers, config.style_layers,
                                         2 if reduced else 4)
    targets = sum(_elements(n, pixels) * 4 for n in config.content_layers)
    targets += sum(LAYER_CHANNELS[n] ** 2 * 4 for n in config.style_layers)
    total = ACTIVATION_FACTOR * activations + targets
    total += weight_bytes(deepest, reduced, machine.conv_algorithm == "winograd")
    total += IMAGE_COPIES * unknowns * 4
    on_cpu = machine.device.type == "cpu"
    if config.optimizer != "lbfgs-scipy" or on_cpu:  # SciPy's workspace is host memory
        total += optimizer_bytes(unknowns, config.optimizer, config.lbfgs_history)
    if on_cpu:
        total += BASELINE_CPU
    return math.ceil(total)


def available_memory(device: str | torch.device = "cpu") -> int:
    """Bytes a new allocation can use now: MemAvailable on the CPU, free memory on CUDA."""
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _proc_status_kib(*fields: str) -> dict[str, int] | None:
    """Selected ``kB`` fields of ``/proc/self/status``; None where there is no ``/proc``."""
    try:
        with open("/proc/self/status") as f:
            values = {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in f) if k in fields}
    except (OSError, ValueError, IndexError):
        return None
    return values if len(values) == len(fields) else None


def memory_in_use(device: str | torch.device = "cpu") -> int:
    """What this process already holds and the estimate counts too: its private resident
    memory (RSS less file-backed pages, see :func:`peak_private_memory`), or CUDA allocations."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return int(torch.cuda.memory_allocated(dev))
    status = _proc_status_kib("VmRSS", "RssFile")
    return (status["VmRSS"] - status["RssFile"]) * 1024 if status else 0


def largest_fitting_size(
    config: TransferConfig, budget: int, *, aspect: float = 1.0, machine: Machine | None = None
) -> int:
    """The largest longest side (a multiple of ``SIZE_MULTIPLE``, at most ``MAX_SIZE``) whose
    estimate fits in ``budget`` bytes, for images of ``aspect`` = short side / long side;
    0 when not even ``MIN_SIZE`` fits."""
    if not 0 < aspect <= 1:
        raise ValueError(f"aspect must be in (0, 1], got {aspect}")
    machine = machine or plan(config)

    def fits(side: int) -> bool:
        return estimate_peak_memory(config, (max(1, round(side * aspect)), side), machine) <= budget

    lo, hi = MIN_SIZE // SIZE_MULTIPLE, MAX_SIZE // SIZE_MULTIPLE  # in units of SIZE_MULTIPLE
    if not fits(lo * SIZE_MULTIPLE):
        return 0
    while lo < hi:  # the estimate grows with the size: bisect
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid * SIZE_MULTIPLE) else (lo, mid - 1)
    return lo * SIZE_MULTIPLE


def _gib(value: float) -> str:
    return f"{value / GIB:.1f} GiB"


def check_memory(
    config: TransferConfig,
    shape: tuple[int, int] | None = None,
    machine: Machine | None = None,
    *,
    available: int | None = None,
    in_use: int | None = None,
) -> int:
    """Return the estimate, or raise :class:`InsufficientMemoryError` when it does not fit.

    Arithmetic only, so call it before loading anything. What this process already holds
    (``in_use``: its RSS, or its CUDA allocations) counts as available to the run, since the
    estimate includes it. ``available``/``in_use`` default to :func:`available_memory` and
    :func:`memory_in_use` on the run's device.
    """
    machine = machine or plan(config)
    height, width = _shape(config, shape)
    need = estimate_peak_memory(config, (height, width), machine)
    free = available_memory(machine.device) if available is None else available
    held = memory_in_use(machine.device) if in_use is None else in_use
    budget = free + held
    if need <= budget:
        return need
    side = max(height, width)
    largest = largest_fitting_size(config, budget, aspect=min(height, width) / side, machine=machine)
    advice = (f"the largest size that fits is {largest} px" if largest
              else f"not even {MIN_SIZE} px fits; free some memory")
    raise InsufficientMemoryError(
        f"a {side} px run needs about {_gib(need)} but {_gib(budget)} is available; {advice}"
    )


def peak_private_memory() -> int:
    """This process's peak resident memory less its file-backed pages, in bytes.

    ``VmHWM - RssFile`` from ``/proc/self/status``. The file-backed pages are the shared
    libraries' code and read-only data mapped from disk; how many of them are resident depends
    on the page cache, not on the run (importing the same torch install leaves far more of them
    resident right after a fresh ``pip install`` than from long-installed files),
    and the kernel can drop them under pressure. What is left is the memory the run consumes. Since
    file pages only accumulate, subtracting today's ``RssFile`` from the high-water mark
    errs low by at most the libraries touched after the peak.

    ``VmHWM`` starts afresh with each ``exec``, unlike ``getrusage``'s ``ru_maxrss``, which
    carries a forking parent's high-water mark into its children (a run started from pytest
    or a notebook would report the parent's peak). Where there is no ``/proc`` this falls
    back to ``ru_maxrss`` (file pages included).
    """
    status = _proc_status_kib("VmHWM", "RssFile")
    if status:
        return (status["VmHWM"] - status["RssFile"]) * 1024
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
