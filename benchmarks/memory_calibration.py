"""Peak memory of real ``nst.transfer`` runs, one fresh process per size, against the estimate.

``python -m benchmarks --memory-only --sizes 128,256,512,1024`` writes
``benchmarks/memory_calibration.json``; ``tests/engine/test_memory.py`` checks
``nst_utils.engine.memory``'s estimate against the 512 and 1024 px entries there (and measures 128
and 256 px itself).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nst_utils.config import TransferConfig

ROOT = Path(__file__).resolve().parent.parent
CALIBRATION_FILE = Path(__file__).with_name("memory_calibration.json")
#: Steps per measured run: the PyTorch L-BFGS adds a curvature pair per step up to its history
#: (20 by default), so its peak is reached only once the history is full.
STEPS = 22


def run_child(spec: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Run :mod:`benchmarks.child` with ``spec`` in a fresh interpreter; its JSON result."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.child", json.dumps(spec)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"benchmark child {spec} failed ({proc.returncode}): {tail[0]}")
    return json.loads(lines[-1])


def measure_peak(size: int, *, steps: int = STEPS, device: str = "cpu", **options: Any) -> dict[str, Any]:
    """Peak RSS (CPU) or ``max_memory_allocated`` (CUDA) of ``nst.transfer`` at ``size`` px."""
    return run_child({"impl": "memory", "size": size, "steps": steps, "device": device, **options})


def config_of(row: dict[str, Any]) -> TransferConfig:
    """The :class:`~nst_utils.config.TransferConfig` a memory row (:func:`measure_peak`) ran with,
    its convolution algorithm as recorded (``"auto"`` may resolve differently on another machine)."""
    from .child import bench_config

    cfg = bench_config(row["size"], row["steps"], row["precision"], row["device"])
    return cfg.replace(optimizer=row["optimizer"], lbfgs_history=row["lbfgs_history"],
                       conv_algorithm="winograd" if row["winograd"] else "direct")


def calibrate(sizes: Iterable[int], *, steps: int = STEPS, device: str = "cpu") -> list[dict[str, Any]]:
    """Measure each size in its own process and add the current estimate and its error."""
    from nst_utils.engine.memory import estimate_peak_memory

    rows = []
    for size in sizes:
        row = measure_peak(size, steps=steps, device=device)
        estimate = estimate_peak_memory(config_of(row))
        row.update(estimate_bytes=estimate, error=estimate / row["peak_bytes"] - 1)
        rows.append(row)
    return rows


def write_calibration(
    rows: list[dict[str, Any]], machine: dict[str, Any], path: Path = CALIBRATION_FILE
) -> None:
    path.write_text(json.dumps({"machine": machine, "runs": rows}, indent=2) + "\n")
