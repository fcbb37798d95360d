"""nst_utils.engine (hardware policy and the seam): what ``"auto"`` resolves to, extractors built
for a config and checked against one, and a run refused before anything large is allocated."""

from __future__ import annotations

import pytest
import torch

from nst_utils.config import PAPER
from nst_utils.engine import build_extractor, check_extractor, hardware, machine_of, plan, prepare
from nst_utils.engine.hardware import Machine, native_bfloat16, resolve_device
from nst_utils.engine.memory import InsufficientMemoryError, estimate_peak_memory

CPU = torch.device("cpu")
#: The cheapest config whose network reaches a layer Winograd computes (conv3_1).
RANDOM = PAPER.replace(network_weights="random", device="cpu", content_layers=("relu3_1",), style_layers=())


@pytest.fixture
def no_native_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hardware reads as float32-only, whatever this machine's CPU can do."""
    monkeypatch.setattr(hardware, "native_bfloat16", lambda device: False)


# --- resolve_device / native_bfloat16 -------------------------------------------------------------

def test_auto_device_is_cuda_when_available_else_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == CPU and resolve_device() == CPU
    assert resolve_device("cpu") == CPU and resolve_device(CPU) == CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device 'cuda' requested but no CUDA GPU is available"):
        resolve_device("cuda")


@pytest.mark.parametrize(("cpuinfo", "native"), [
    ("flags\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n", True),
    ("flags\t: fpu sse2 avx2 amx_bf16 amx_tile\n", True),
    ("flags\t: fpu sse2 avx2 avx512f\n", False),
    (None, False),  # no /proc/cpuinfo
])
def test_native_bfloat16_on_the_cpu_is_read_from_its_flags(
    monkeypatch: pytest.MonkeyPatch, tmp_path, cpuinfo: str | None, native: bool
) -> None:
    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo)
    real_open = open
    monkeypatch.setattr(hardware, "open", lambda name, *a, **k: real_open(path, *a, **k), raising=False)
    assert native_bfloat16(CPU) is native


def test_no_native_bfloat16_on_other_devices() -> None:
    assert native_bfloat16(torch.device("meta")) is False


# --- plan ------------------------------------------------------------------------------------------

@pytest.mark.usefixtures("no_native_bfloat16")
@pytest.mark.parametrize(("precision", "conv_algorithm", "expected"), [
    ("float32", "auto", ("float32", "winograd")),  # the CPU default: Winograd for the deep layers
    ("auto", "auto", ("float32", "winograd")),  # no native bfloat16: float32
    ("float32", "direct", ("float32", "direct")),  # an explicit choice stands
    ("bfloat16", "auto", ("bfloat16", "direct")),  # Winograd's transforms amplify bfloat16 rounding
    ("bfloat16", "winograd", ("bfloat16", "winograd")),  # ... but asked for, it is what runs
])
def test_plan_on_the_cpu(precision: str, conv_algorithm: str, expected: tuple[str, str]) -> None:
    machine = plan(PAPER.replace(device="cpu", precision=precision, conv_algorithm=conv_algorithm))
    assert machine == Machine(CPU, *expected)


def test_auto_precision_is_bfloat16_where_it_is_native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "native_bfloat16", lambda device: True)
    assert plan(PAPER.replace(device="cpu", precision="auto")) == Machine(CPU, "bfloat16", "direct")


def test_auto_is_direct_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """cuDNN picks its own algorithms (Winograd among them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    machine = plan(PAPER.replace(device="cuda", precision="float32"))
    assert machine == Machine(torch.device("cuda"), "float32", "direct")


def test_machine_names_what_runs() -> None:
    assert Machine(CPU, "float32", "winograd").autocast_dtype is None
    assert Machine(CPU, "bfloat16", "direct").autocast_dtype == torch.bfloat16
    assert Machine(CPU, "bfloat16", "direct").to_dict() == {
        "device": "cpu", "precision": "bfloat16", "conv_algorithm": "direct"}


# --- build_extractor / machine_of ------------------------------------------------------------------

@pytest.mark.parametrize(("precision", "conv_algorithm", "expected"), [
    ("float32", "auto", Machine(CPU, "float32", "winograd")),
    ("float32", "direct", Machine(CPU, "float32", "direct")),
    ("bfloat16", "auto", Machine(CPU, "bfloat16", "direct")),
])
def test_the_extractor_is_built_as_planned(precision: str, conv_algorithm: str, expected: Machine) -> None:
    config = RANDOM.replace(precision=precision, conv_algorithm=conv_algorithm)
    extractor = build_extractor(config)
    assert machine_of(extractor) == expected == plan(config)
    assert extractor.layer_names[-1] == "relu3_1"  # truncated after the config's deepest layer
    assert extractor.channels_last  # on the CPU


def test_a_shallow_extractor_stays_direct_even_when_winograd_was_asked() -> None:
    """Up to relu2_1 no layer is one Winograd computes: nothing is swapped, nothing claimed."""
    extractor = build_extractor(RANDOM.replace(conv_algorithm="winograd"), ["relu2_1"])
    assert extractor.layer_names[-1] == "relu2_1"
    assert extractor.conv_algorithm == "direct" and machine_of(extractor).conv_algorithm == "direct"


# --- check_extractor ---------------------------------------------------------------------------------

def test_an_extractor_that_agrees_with_the_config_gives_its_machine(paper_extractor) -> None:
    layers = [*PAPER.content_layers, *PAPER.style_layers]
    on_cpu = PAPER.replace(device="cpu")
    assert check_extractor(paper_extractor, on_cpu, layers) == machine_of(paper_extractor)
    assert check_extractor(paper_extractor, PAPER, layers).device == CPU  # "auto" agrees with any choice


@pytest.mark.parametrize(("changes", "setting"), [
    ({"pooling": "max"}, "pooling"),
    ({"network_weights": "random"}, "network_weights"),
    ({"precision": "bfloat16", "conv_algorithm": "auto"}, "precision"),
    ({"conv_algorithm": "direct"}, "conv_algorithm"),
])
def test_an_extractor_built_for_other_settings_is_refused(
    paper_extractor, changes: dict, setting: str
) -> None:
    """The paper extractor: Caffe weights, average pooling, float32, Winograd (the CPU default)."""
    config = PAPER.replace(device="cpu", **changes)
    with pytest.raises(ValueError, match=f"built with {setting} .* but the config asks for"):
        check_extractor(paper_extractor, config, [*config.content_layers, *config.style_layers])


def test_random_weights_must_share_the_seed(small_random_extractor) -> None:
    config = PAPER.replace(network_weights="random", device="cpu", seed=1)
    with pytest.raises(ValueError, match="built with seed 0 but the config asks for 1"):
        check_extractor(small_random_extractor, config, ["relu1_1"])


def test_a_shallow_direct_extractor_agrees_with_a_winograd_config(small_random_extractor) -> None:
    """Nothing to choose: Winograd would compute none of its layers."""
    config = PAPER.replace(network_weights="random", device="cpu", conv_algorithm="winograd")
    assert check_extractor(small_random_extractor, config, ["relu2_1"]).conv_algorithm == "direct"


def test_an_extractor_that_stops_too_early_is_refused(small_random_extractor) -> None:
    config = PAPER.replace(network_weights="random", device="cpu")
    with pytest.raises(ValueError, match="the extractor stops at 'relu2_1', before the layer 'relu3_1'"):
        check_extractor(small_random_extractor, config, ["relu1_1", "relu3_1"])


# --- prepare -----------------------------------------------------------------------------------------

def test_prepare_refuses_an_oversized_run_before_building_any_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("prepare built a network before checking the memory")

    monkeypatch.setattr("nst_utils.features.build_vgg19_body", no_network)
    monkeypatch.setattr("nst_utils.engine.memory.available_memory", lambda device="cpu": 2**20)
    with pytest.raises(InsufficientMemoryError, match="a 4096 px run needs about"):
        prepare(PAPER.replace(device="cpu", size=4096), (4096, 4096))


def test_prepare_builds_the_extractor_or_uses_the_one_given(small_random_extractor) -> None:
    config = PAPER.replace(network_weights="random", device="cpu", size=64, content_layers=("relu2_1",),
                           style_layers=())
    given = prepare(config, (48, 64), small_random_extractor)
    assert given.extractor is small_random_extractor
    assert given.machine == machine_of(small_random_extractor)
    assert given.estimated_memory == estimate_peak_memory(config, (48, 64), given.machine)
    built = prepare(config, (48, 64))
    assert built.extractor is not small_random_extractor
    assert built.extractor.layer_names == small_random_extractor.layer_names
    assert built.estimated_memory == given.estimated_memory  # no Winograd layer to count either way


def test_a_prepared_machine_names_what_its_extractor_runs() -> None:
    """A shallow network asked for Winograd runs direct convolutions; the run's record must say so."""
    config = RANDOM.replace(content_layers=("relu2_1",), conv_algorithm="winograd")
    prepared = prepare(config, (64, 64))
    assert prepared.machine == machine_of(prepared.extractor)
