"""The same results on every device this machine has: the CPU always, a CUDA GPU when present.

Without a GPU the CUDA cases skip (the suite never assumes one); ``benchmarks/gpu_check.sh`` runs
this file on a GPU machine. Each case compares a device's result with the CPU's float32 result.
"""

from __future__ import annotations

import pytest
import torch
from helpers import SMALL, rand

import nst_utils as nst

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")),
]
#: The images below are 48 px.
CONFIG = SMALL.replace(size=48, steps=6)


@pytest.mark.parametrize("device", DEVICES)
def test_losses_match_the_cpu(device: str) -> None:
    f, p = rand(1, 16, 12, 10), rand(1, 16, 12, 10, seed=1)
    a = nst.gram_matrix(rand(1, 16, 12, 10, seed=2))
    on = torch.device(device)
    torch.testing.assert_close(nst.gram_matrix(f.to(on)).cpu(), nst.gram_matrix(f), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(nst.content_loss(f.to(on), p.to(on)).cpu(), nst.content_loss(f, p),
                               rtol=1e-5, atol=0)
    torch.testing.assert_close(nst.style_layer_loss(f.to(on), a.to(on)).cpu(), nst.style_layer_loss(f, a),
                               rtol=1e-4, atol=0)
    torch.testing.assert_close(nst.tv_loss(f[:, :3].to(on)).cpu(), nst.tv_loss(f[:, :3]), rtol=1e-5, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_features_match_the_cpu(device: str, small_random_extractor) -> None:
    cfg = CONFIG.replace(device=device, conv_algorithm="direct")
    extractor = nst.make_extractor(cfg)
    image = rand(1, 3, 40, 48)
    got = extractor(image.to(extractor.input_scale.device), ["relu1_1", "relu2_1"])
    want = small_random_extractor(image, ["relu1_1", "relu2_1"])
    for name in want:
        assert got[name].device.type == device
        torch.testing.assert_close(got[name].cpu(), want[name], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_a_transfer_runs_on_the_device_and_keeps_the_box(device: str, optimizer: str) -> None:
    cfg = CONFIG.replace(device=device, optimizer=optimizer)
    result = nst.transfer(rand(1, 3, 48, 40), rand(1, 3, 48, 40, seed=1), cfg)
    assert result.machine.device.type == device and result.image.device.type == device
    assert 0 <= float(result.image.min()) and float(result.image.max()) <= 1
    assert result.losses()[-1] < result.losses()[0]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("preserve_color", ["luminance", "histogram"])
def test_chapter_4_controls_run_on_the_device_from_host_inputs(device: str, preserve_color: str) -> None:
    """Sample names, host masks and the colour steps around the run: all end up on the device."""
    from nst_utils.color import rgb_to_yiq
    from nst_utils.masks import split_masks

    cfg = CONFIG.replace(device=device, preserve_color=preserve_color, padding="reflect")
    photo = nst.load_image("tubingen", 48)
    result = nst.transfer(photo, ["scream", "starry_night"], cfg, masks=split_masks(tuple(photo.shape[-2:])))
    assert result.image.device.type == device and result.steps == cfg.steps
    if preserve_color == "luminance":
        torch.testing.assert_close(rgb_to_yiq(result.image.cpu())[:, 1:], rgb_to_yiq(photo)[:, 1:],
                                   atol=1e-4, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_box_lbfgs_solves_a_bounded_quadratic_on_the_device(device: str) -> None:
    from nst_utils.lbfgsb import minimize_in_box

    on = torch.device(device)
    target = torch.linspace(-0.5, 1.5, 101, device=on)
    seen: list[torch.device] = []

    def evaluate(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(x.device)
        return (x - target).pow(2).sum(), 2 * (x - target)

    x = minimize_in_box(evaluate, torch.full_like(target, 0.5), steps=20)
    assert x.device == target.device and {d.type for d in seen} == {device}
    torch.testing.assert_close(x, target.clamp(0, 1), rtol=0, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_the_memory_estimate_bounds_a_cuda_run() -> None:
    from nst_utils.engine.memory import estimate_peak_memory

    cfg = nst.PAPER.replace(size=256, steps=3, device="cuda", pyramid=())  # one level, at 256 px
    torch.cuda.reset_peak_memory_stats()
    result = nst.transfer("tubingen", "starry_night", cfg)
    measured = torch.cuda.max_memory_allocated()
    estimate = estimate_peak_memory(cfg, tuple(result.image.shape[-2:]))
    assert 0.5 * estimate <= measured <= 1.15 * estimate, (measured, estimate)
