"""Which device, precision and convolution algorithm a run uses on the machine at hand.

The settings a user gives (``device``, ``precision``, ``conv_algorithm`` in
:class:`~nst_utils.config.TransferConfig`) may say ``"auto"``; :func:`plan` turns them into a
:class:`Machine` that names what will actually run. The policy:

* device ``"auto"``: CUDA when available, else the CPU;
* precision ``"auto"``: bfloat16 autocast where the hardware runs bfloat16 natively (recent
  GPUs, CPUs with AVX512-BF16 or AMX), else float32, since emulated bfloat16 is far slower;
* conv_algorithm ``"auto"``: Winograd F(4x4, 3x3) (:mod:`.winograd`) for the deep layers on a
  CPU in float32, where it is faster than PyTorch's direct convolutions; direct on CUDA (cuDNN
  chooses its own algorithms, Winograd among them) and under bfloat16 (Winograd's transforms
  amplify its rounding).

The timings behind both choices: ``benchmarks/results.md`` and the README.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

import torch

from ..config import TransferConfig
from ..device import resolve_device


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), e.g. to key measurements of this machine."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 convolutions natively (read from the hardware, never assumed)."""
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


@dataclass(frozen=True)
class Machine:
    """What a run actually uses: no ``"auto"`` left in it."""

    device: torch.device
    precision: str  # "float32" or "bfloat16" (autocast; losses are summed in float32 either way)
    conv_algorithm: str  # "direct" or "winograd"

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.precision == "bfloat16" else None

    def to_dict(self) -> dict[str, str]:
        return {"device": str(self.device), "precision": self.precision,
                "conv_algorithm": self.conv_algorithm}


def plan(config: TransferConfig) -> Machine:
    """Resolve the config's machine settings for this hardware (see the module docstring)."""
    device = resolve_device(config.device)
    precision = config.precision
    if precision == "auto":
        precision = "bfloat16" if native_bfloat16(device) else "float32"
    algorithm = config.conv_algorithm
    if algorithm == "auto":
        algorithm = "winograd" if device.type == "cpu" and precision == "float32" else "direct"
    return Machine(device, precision, algorithm)
