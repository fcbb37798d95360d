"""How long the command line takes to answer when no run starts: ``python -m benchmarks.startup``.

Each measurement is a fresh ``python -m nst_utils`` process (imports are cached per process),
timed from launch to exit; the median of :data:`REPEATS` is reported. Help and a missing input
file should be answered before PyTorch loads (see ``tests/test_cli_startup.py``).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The checkout whose ``nst_utils`` is timed: the processes start here, so ``-m`` imports it.
ROOT = Path(__file__).resolve().parents[1]
REPEATS = 5


def _seconds(args: list[str], expected_status: int) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nst_utils", *args], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != expected_status:  # timing the wrong path would be worse than no number
        raise RuntimeError(f"nst {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return seconds


def cli_startup_seconds(repeats: int = REPEATS) -> dict[str, float]:
    """``{"help": s, "missing_file": s}``: the median wall time of ``nst --help`` and of the
    error for a missing content file, each run ``repeats`` times in a fresh interpreter."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        missing = ["transfer", str(folder / "no_such_photo.jpg"), "mosaic", "-o", str(folder / "out.png")]
        return {
            "help": statistics.median(_seconds(["--help"], 0) for _ in range(repeats)),
            "missing_file": statistics.median(_seconds(missing, 2) for _ in range(repeats)),
        }


if __name__ == "__main__":
    print(json.dumps(cli_startup_seconds()))
