"""nst_utils.memory: the peak-memory estimate, its calibration, and the fail-fast check."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import nst_utils as nst
from nst_utils import memory
from nst_utils.memory import (
    InsufficientMemoryError,
    available_memory,
    check_memory,
    estimate_peak_memory,
    largest_fitting_size,
)

TOLERANCE = 0.15
GIB = 2**30


# --- smoke / shape -------------------------------------------------------------------------------

def test_estimate_is_a_positive_int_for_the_paper_defaults() -> None:
    estimate = estimate_peak_memory(512, device="cpu")
    assert isinstance(estimate, int) and estimate > memory.BASELINE_CPU


def test_config_and_keywords_give_the_same_estimate() -> None:
    cfg = nst.PAPER.replace(size=384, lbfgs_history=7, device="cpu")
    assert estimate_peak_memory(cfg) == estimate_peak_memory(384, lbfgs_history=7, device="cpu")


def test_an_int_size_is_a_square() -> None:
    assert estimate_peak_memory(300, device="cpu") == estimate_peak_memory((300, 300), device="cpu")


def test_available_memory_is_positive() -> None:
    assert available_memory("cpu") > 0


# --- monotonicity ----------------------------------------------------------------------------------

def test_estimate_grows_with_size() -> None:
    sizes = [32, 64, 128, 256, 512, 1024, 2048, 4096]
    values = [estimate_peak_memory(s, device="cpu") for s in sizes]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert estimate_peak_memory((256, 512), device="cpu") < estimate_peak_memory(512, device="cpu")


def test_estimate_grows_with_lbfgs_history() -> None:
    values = [estimate_peak_memory(512, lbfgs_history=m, device="cpu") for m in (1, 5, 20, 100)]
    assert values == sorted(values) and len(set(values)) == len(values)


def test_estimate_grows_with_layers() -> None:
    styles = nst.FIG1_STYLE_LAYER_SETS  # relu1_1; + relu2_1; ... ; + relu5_1
    values = [estimate_peak_memory(512, content_layers=("relu1_2",), style_layers=s, device="cpu")
              for s in styles]
    assert values == sorted(values) and len(set(values)) == len(values)
    one = estimate_peak_memory(512, style_layers=("relu5_1",), device="cpu")
    assert one < estimate_peak_memory(512, style_layers=("relu1_1", "relu5_1"), device="cpu")


def test_winograd_filters_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two transformed filter banks, 36 floats per 3x3 filter each, for conv3_1..conv5_1."""
    monkeypatch.setenv("NST_FAST", "1")
    direct = estimate_peak_memory(512, device="cpu", conv_algorithm="direct")
    winograd = estimate_peak_memory(512, device="cpu", conv_algorithm="winograd")
    deep = sum(c * k for c, k in [(128, 256), (256, 256), (256, 256), (256, 256), (256, 512),
                                   (512, 512), (512, 512), (512, 512), (512, 512)])
    assert winograd - direct == 2 * 36 * deep * 4
    assert estimate_peak_memory(512, device="cpu") == direct  # "auto" in fast mode (the tests)
    monkeypatch.delenv("NST_FAST")
    assert estimate_peak_memory(512, device="cpu") == winograd  # "auto" on a CPU in float32
    cfg = nst.PAPER.replace(size=512, device="cpu", conv_algorithm="direct")
    assert estimate_peak_memory(cfg) == direct


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
    assert estimate_peak_memory(512, optimizer="adam", device="cpu") < estimate_peak_memory(512, device="cpu")


# --- against measurements ----------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("size", [128, 256])
def test_estimate_within_tolerance_of_a_measured_run(size: int) -> None:
    """Peak private memory of a real 2-step ``nst.transfer`` in a fresh process (one per size;
    the tests run in fast mode, so with direct convolutions; Winograd runs: the next test)."""
    from benchmarks.memory_calibration import measure_peak

    measured = measure_peak(size, steps=2, device="cpu")["peak_bytes"]
    estimate = estimate_peak_memory(size, device="cpu")
    assert abs(estimate / measured - 1) <= TOLERANCE, f"{size} px: {estimate=} {measured=}"


def test_estimate_within_tolerance_of_the_benchmark_calibration() -> None:
    """512 and 1024 px were measured by ``python -m benchmarks --memory-only`` (too slow here)."""
    from benchmarks.memory_calibration import CALIBRATION_FILE

    runs = json.loads(CALIBRATION_FILE.read_text())["runs"]
    runs = [r for r in runs if r["device"] == "cpu" and r["precision"] == "float32"]
    assert {512, 1024} <= {r["size"] for r in runs}
    for run in runs:
        size, peak = run["size"], run["peak_bytes"]
        algorithm = "winograd" if run["winograd"] else "direct"
        estimate = estimate_peak_memory(size, device="cpu", precision="float32", conv_algorithm=algorithm)
        assert abs(estimate / peak - 1) <= TOLERANCE, f"{size} px: {estimate=} measured={peak}"


# --- the check ---------------------------------------------------------------------------------------

def test_oversized_request_fails_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):  # the check must not get as far as building anything
        raise AssertionError("check_memory allocated a network")

    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": 1 * GIB)
    monkeypatch.setattr("nst_utils.features.build_vgg19_body", no_network)
    in_use = memory.memory_in_use("cpu")
    with pytest.raises(InsufficientMemoryError) as info:
        check_memory(4096, device="cpu")
    message = str(info.value)
    match = re.fullmatch(
        r"a 4096 px run needs about [\d.]+ GiB but ([\d.]+) GiB is available; "
        r"the largest size that fits is (\d+) px", message)
    assert match, message
    largest = int(match.group(2))
    budget = 1 * GIB + in_use
    assert 0 < largest < 4096 and largest % memory.SIZE_MULTIPLE == 0
    assert estimate_peak_memory(largest, device="cpu") <= budget
    assert estimate_peak_memory(largest + memory.SIZE_MULTIPLE, device="cpu") > budget
    assert isinstance(info.value, MemoryError) and isinstance(info.value, ValueError)


def test_check_passes_and_returns_the_estimate_when_it_fits() -> None:
    need = estimate_peak_memory(256, device="cpu")
    assert check_memory(256, device="cpu", available=need, in_use=0) == need


def test_nothing_fits_says_so() -> None:
    with pytest.raises(InsufficientMemoryError, match="not even 32 px fits"):
        check_memory(512, device="cpu", available=10 * 2**20, in_use=0)


def test_largest_fitting_size_is_monotonic_in_the_budget() -> None:
    sizes = [largest_fitting_size(b * GIB, device="cpu") for b in (1, 2, 4, 8, 16)]
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]


# --- exceptions ------------------------------------------------------------------------------------

def test_unknown_layer_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown style layer 'relu9_9'"):
        estimate_peak_memory(256, style_layers=("relu9_9",), device="cpu")


def test_no_layers_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no layers requested"):
        estimate_peak_memory(256, content_layers=(), style_layers=(), device="cpu")


def test_bad_optimizer_and_history_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        estimate_peak_memory(256, optimizer="sgd", device="cpu")
    with pytest.raises(ValueError, match="lbfgs_history must be at least 1"):
        estimate_peak_memory(256, lbfgs_history=0, device="cpu")


def test_cuda_estimate_leaves_out_the_host_side_lbfgs_workspace() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cpu = estimate_peak_memory(512, device="cpu")
    cuda = estimate_peak_memory(512, device="cuda")
    assert cuda < cpu - memory.BASELINE_CPU
