"""nst_utils.engine.memory: the peak-memory estimate, its calibration, and the fail-fast check."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import ROOT

import nst_utils as nst
from nst_utils.engine import Machine, memory, plan
from nst_utils.engine.memory import (
    InsufficientMemoryError,
    available_memory,
    check_memory,
    estimate_peak_memory,
    largest_fitting_size,
)

TOLERANCE = 0.15
GIB = 2**30
#: The paper's run on the CPU; tests change what they vary from here.
CPU = nst.PAPER.replace(device="cpu")


def _estimate(size: int = 512, shape: tuple[int, int] | None = None, **changes) -> int:
    return estimate_peak_memory(CPU.replace(size=size, **changes), shape)


# --- smoke / shape -------------------------------------------------------------------------------

def test_estimate_is_a_positive_int_for_the_paper_defaults() -> None:
    estimate = _estimate(512)
    assert isinstance(estimate, int) and estimate > memory.BASELINE_CPU


def test_no_shape_is_a_square_of_the_config_size() -> None:
    assert _estimate(300) == estimate_peak_memory(CPU, (300, 300))


def test_the_machine_defaults_to_the_plan() -> None:
    cfg = CPU.replace(size=384, lbfgs_history=7)
    assert estimate_peak_memory(cfg) == estimate_peak_memory(cfg, machine=plan(cfg))


def test_available_memory_is_positive() -> None:
    assert available_memory("cpu") > 0


# --- monotonicity ----------------------------------------------------------------------------------

def test_estimate_grows_with_size() -> None:
    sizes = [32, 64, 128, 256, 512, 1024, 2048, 4096]
    values = [_estimate(s) for s in sizes]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert _estimate(512, (256, 512)) < _estimate(512)


def test_estimate_grows_with_lbfgs_history() -> None:
    values = [_estimate(512, lbfgs_history=m) for m in (1, 5, 20, 100)]
    assert values == sorted(values) and len(set(values)) == len(values)


def test_estimate_grows_with_layers() -> None:
    styles = nst.FIG1_STYLE_LAYER_SETS  # relu1_1; + relu2_1; ... ; + relu5_1
    values = [_estimate(512, content_layers=("relu1_2",), style_layers=s) for s in styles]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert _estimate(512, style_layers=("relu5_1",)) < _estimate(512, style_layers=("relu1_1", "relu5_1"))


def test_content_reconstruction_and_texture_synthesis_need_less_than_transfer() -> None:
    transfer = _estimate(512)
    assert _estimate(512, style_layers=()) < transfer
    assert _estimate(512, content_layers=()) < transfer


def test_winograd_filters_are_counted() -> None:
    """Two transformed filter banks, 36 floats per 3x3 filter each, for conv3_1..conv5_1."""
    direct = _estimate(512, conv_algorithm="direct")
    winograd = _estimate(512, conv_algorithm="winograd")
    deep = sum(c * k for c, k in [(128, 256), (256, 256), (256, 256), (256, 256), (256, 512),
                                   (512, 512), (512, 512), (512, 512), (512, 512)])
    assert winograd - direct == 2 * 36 * deep * 4
    assert _estimate(512) == winograd  # conv_algorithm "auto" on a CPU in float32
    cpu = torch.device("cpu")
    assert estimate_peak_memory(CPU, machine=Machine(cpu, "float32", "direct")) == direct


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_private_memory_leaves_out_file_backed_pages() -> None:
    lines = Path("/proc/self/status").read_text().splitlines()
    status = {k: int(v.split()[0]) * 1024 for k, _, v in (line.partition(":") for line in lines)
              if k in ("VmHWM", "RssFile")}
    peak = memory.peak_private_memory()
    assert 0 < peak <= status["VmHWM"]
    assert peak >= status["VmHWM"] - status["RssFile"] - 64 * 2**20  # read a moment apart
    assert 0 < memory.memory_in_use("cpu") <= peak + 64 * 2**20


def test_adam_needs_less_than_lbfgs_with_the_default_history() -> None:
    assert _estimate(512, optimizer="adam") < _estimate(512)


# --- against measurements ----------------------------------------------------------------------------

#: ``benchmarks/memory_calibration.json``: peak private memory of real runs, measured by
#: ``python -m benchmarks --memory-only`` on the machine it names (too slow to repeat here).
CALIBRATION_FILE = ROOT / "benchmarks" / "memory_calibration.json"
#: Steps of a measured run: the PyTorch L-BFGS adds a curvature pair per step up to its history
#: (20 by default), so its peak is reached only once the history is full.
MEASURED_STEPS = 22

#: One measured run in a fresh interpreter (peak memory is a process high-water mark), as the
#: benchmark measures it: ``nst.transfer`` with the paper's settings on the CPU, then the peak. One
#: level, every step taken (no coarse levels, no early stop): the history fills up at ``size``.
_MEASURE = textwrap.dedent("""
    import sys
    import nst_utils as nst
    from nst_utils.engine.memory import peak_private_memory
    size, steps = int(sys.argv[1]), int(sys.argv[2])
    images = [nst.load_image(name, (size, size)) for name in ("hopper", "swirls")]
    nst.transfer(*images, nst.PAPER.replace(device="cpu", size=size, steps=steps, pyramid=(), plateau_tol=0))
    print(peak_private_memory())
""")


def _calibrated_config(run: dict) -> nst.TransferConfig:
    """The config a calibration run used, its convolution algorithm as recorded ("auto" may
    resolve differently on this machine)."""
    return CPU.replace(size=run["size"], steps=run["steps"], precision=run["precision"],
                       optimizer=run["optimizer"], lbfgs_history=run["lbfgs_history"],
                       conv_algorithm="winograd" if run["winograd"] else "direct")


@pytest.mark.slow
@pytest.mark.parametrize("size", [128, 256])
def test_estimate_within_tolerance_of_a_measured_run(size: int) -> None:
    """Peak private memory of a real ``nst.transfer`` in a fresh process (one per size), run until
    the L-BFGS history is full."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(size), str(MEASURED_STEPS)], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    measured = int(out.stdout.split()[-1])
    estimate = estimate_peak_memory(CPU.replace(size=size, steps=MEASURED_STEPS, pyramid=(), plateau_tol=0))
    assert abs(estimate / measured - 1) <= TOLERANCE, f"{size} px: {estimate=} {measured=}"


def test_estimate_within_tolerance_of_the_benchmark_calibration() -> None:
    """512 and 1024 px, among others, as the benchmark measured them."""
    runs = json.loads(CALIBRATION_FILE.read_text())["runs"]
    runs = [r for r in runs if r["device"] == "cpu" and r["precision"] == "float32"]
    assert {512, 1024} <= {r["size"] for r in runs}
    for run in runs:
        size, peak = run["size"], run["peak_bytes"]
        estimate = estimate_peak_memory(_calibrated_config(run))
        assert abs(estimate / peak - 1) <= TOLERANCE, f"{size} px: {estimate=} measured={peak}"


# --- the check ---------------------------------------------------------------------------------------

def test_oversized_request_fails_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):  # the check must not get as far as building anything
        raise AssertionError("check_memory allocated a network")

    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": 1 * GIB)
    monkeypatch.setattr("nst_utils.features.build_vgg19_body", no_network)
    in_use = memory.memory_in_use("cpu")
    with pytest.raises(InsufficientMemoryError) as info:
        check_memory(CPU.replace(size=4096))
    message = str(info.value)
    match = re.fullmatch(
        r"a 4096 px run needs about [\d.]+ GiB but ([\d.]+) GiB is available; "
        r"the largest size that fits is (\d+) px", message)
    assert match, message
    largest = int(match.group(2))
    budget = 1 * GIB + in_use
    assert 0 < largest < 4096 and largest % memory.SIZE_MULTIPLE == 0
    assert _estimate(largest) <= budget
    assert _estimate(largest + memory.SIZE_MULTIPLE) > budget
    assert isinstance(info.value, MemoryError) and isinstance(info.value, ValueError)


def test_the_largest_fitting_size_keeps_the_aspect() -> None:
    """A 2:1 image that does not fit: the advice is a longest side whose 2:1 image fits."""
    with pytest.raises(InsufficientMemoryError, match="the largest size that fits is") as info:
        check_memory(CPU, (1024, 2048), available=2 * GIB, in_use=0)
    largest = int(re.search(r"(\d+) px$", str(info.value)).group(1))
    assert largest == largest_fitting_size(CPU, 2 * GIB, aspect=0.5)
    assert largest > largest_fitting_size(CPU, 2 * GIB)  # a square of that side needs more
    assert _estimate(512, (largest // 2, largest)) <= 2 * GIB


def test_check_passes_and_returns_the_estimate_when_it_fits() -> None:
    need = _estimate(256)
    assert check_memory(CPU.replace(size=256), available=need, in_use=0) == need


def test_nothing_fits_says_so() -> None:
    with pytest.raises(InsufficientMemoryError, match="not even 32 px fits"):
        check_memory(CPU, available=10 * 2**20, in_use=0)


def test_largest_fitting_size_is_monotonic_in_the_budget() -> None:
    sizes = [largest_fitting_size(CPU, b * GIB) for b in (1, 2, 4, 8, 16)]
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]


# --- exceptions ------------------------------------------------------------------------------------

def test_bad_shape_and_aspect_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="image size must be positive, got 0x64"):
        estimate_peak_memory(CPU, (0, 64))
    with pytest.raises(ValueError, match=r"aspect must be in \(0, 1\], got 2"):
        largest_fitting_size(CPU, GIB, aspect=2)


def test_cuda_estimate_leaves_out_the_interpreter_and_scipys_host_side_workspace() -> None:
    """Arithmetic only: a CUDA machine is given, not looked for."""
    cfg = CPU.replace(size=512, conv_algorithm="direct", optimizer="lbfgs-scipy")
    cpu = estimate_peak_memory(cfg)
    cuda = estimate_peak_memory(cfg, machine=Machine(torch.device("cuda"), "float32", "direct"))
    workspace = memory.optimizer_bytes(3 * 512 * 512, "lbfgs-scipy", cfg.lbfgs_history)
    assert cpu - cuda == pytest.approx(memory.BASELINE_CPU + workspace, abs=1)
