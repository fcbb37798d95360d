"""Where the numbers came from: CPU model, cores, torch version, date, native bfloat16, load."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from typing import Any

import torch

from nst_utils.engine.hardware import cpu_model, native_bfloat16


def describe(device: torch.device) -> dict[str, Any]:
    """A JSON-able description of this machine and the software measured on it."""
    info: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device.type,
        "bf16_native": native_bfloat16(device),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
