"""nst_utils.engine.winograd: Winograd F(4x4, 3x3) against PyTorch's direct convolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import rand
from torch import nn

from nst_utils.config import PAPER
from nst_utils.engine import winograd
from nst_utils.engine.winograd import WinogradConv2d, transform_filters, use_winograd, winograd_conv3x3
from nst_utils.recipes import make_extractor

#: Float32 tolerance relative to the largest output: the same products summed in another order,
#: plus the transforms' rounding, stay an order of magnitude below it.
REL = 1e-4


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize(("channels", "out", "height", "width"), [
    (3, 8, 16, 16),     # one band, whole tiles
    (16, 24, 13, 17),   # sides that are not multiples of the tile
    (32, 16, 5, 3),     # smaller than one tile
    (8, 8, 1, 9),
])
def test_matches_direct_convolution(batch: int, channels: int, out: int, height: int, width: int) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, height, width, generator=gen)
    w = torch.randn(out, channels, 3, 3, generator=gen)
    b = torch.randn(out, generator=gen)
    expected = F.conv2d(x, w, b, padding=1)
    got = winograd_conv3x3(x, transform_filters(w), b)
    assert got.shape == expected.shape
    assert _rel(got, expected) < REL


def test_bands_give_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tile rows are processed in bands that fit in cache; the band size must not matter
    (beyond rounding: a different matrix width changes the GEMM's summation blocking)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 8, 30, 22, generator=gen)
    u = transform_filters(torch.randn(4, 8, 3, 3, generator=gen))
    whole = winograd_conv3x3(x, u)
    monkeypatch.setattr(winograd, "BAND_BYTES", 1)  # one tile row per band
    assert _rel(winograd_conv3x3(x, u), whole) < 1e-5


def test_channels_last_input() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 8, 12, 12, generator=gen).contiguous(memory_format=torch.channels_last)
    w = torch.randn(8, 8, 3, 3, generator=gen)
    assert _rel(winograd_conv3x3(x, transform_filters(w)), F.conv2d(x, w, padding=1)) < REL


@pytest.fixture
def every_map_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Winograd even for the small maps these tests use (real runs convolve those directly)."""
    monkeypatch.setattr(winograd, "MIN_SIDE", 1)


def test_maps_below_the_minimum_side_are_convolved_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    real = winograd.winograd_conv3x3
    monkeypatch.setattr(winograd, "winograd_conv3x3",
                        lambda x, *a: calls.append(tuple(x.shape)) or real(x, *a))
    conv = nn.Conv2d(4, 6, 3, padding=1).requires_grad_(False)
    fast = WinogradConv2d(conv)
    side = winograd.MIN_SIDE
    for shape in [(1, 4, side - 1, 40), (1, 4, 40, side - 1), (1, 4, side, side)]:
        x = torch.randn(shape, requires_grad=True)
        y = fast(x)
        (grad,) = torch.autograd.grad(y.square().sum(), x)
        xd = x.detach().requires_grad_(True)
        yd = conv(xd)
        (grad_direct,) = torch.autograd.grad(yd.square().sum(), xd)
        assert _rel(y, yd) < REL and _rel(grad, grad_direct) < REL
    # Only the last map, forward and backward, went through Winograd.
    assert calls == [(1, 4, side, side), (1, 6, side, side)]


@pytest.mark.usefixtures("every_map_size")
def test_input_gradient_matches_autograd_of_the_direct_convolution() -> None:
    gen = torch.Generator().manual_seed(3)
    conv = nn.Conv2d(16, 32, 3, padding=1).requires_grad_(False)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
    fast = WinogradConv2d(conv)
    x = torch.randn(1, 16, 19, 14, generator=gen)
    weight = torch.randn(1, 32, 19, 14, generator=gen)  # a loss that weights every output differently
    grads = []
    for module in (conv, fast):
        xi = x.clone().requires_grad_(True)
        (module(xi) * weight).sum().backward()
        grads.append(xi.grad)
    assert _rel(grads[1], grads[0]) < REL


@pytest.mark.usefixtures("every_map_size")
def test_gradcheck_in_double() -> None:
    conv = nn.Conv2d(2, 3, 3, padding=1).double().requires_grad_(False)
    fast = WinogradConv2d(conv)
    x = torch.randn(1, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fast, (x,))


def test_rejects_what_it_cannot_compute() -> None:
    for conv in (nn.Conv2d(4, 4, 5, padding=2), nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.Conv2d(4, 4, 3)):
        with pytest.raises(ValueError, match="3x3 stride-1 padding-1"):
            WinogradConv2d(conv)
    with pytest.raises(ValueError, match="3x3 filters"):
        transform_filters(torch.zeros(4, 4, 5, 5))
    with pytest.raises(ValueError, match=r"expected \(B, 4, H, W\)"):
        winograd_conv3x3(torch.zeros(1, 3, 8, 8), transform_filters(torch.zeros(2, 4, 3, 3)))


def test_only_the_deep_layers_are_replaced() -> None:
    config = PAPER.replace(network_weights="random", device="cpu", precision="float32",
                           conv_algorithm="winograd")
    ext = make_extractor(config, ["relu5_1"])
    replaced = [name for name, m in zip(ext.layer_names, ext.body) if isinstance(m, WinogradConv2d)]
    assert replaced == ["conv3_1", "conv3_2", "conv3_3", "conv3_4",
                        "conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv5_1"]
    assert ext.conv_algorithm == "winograd"
    assert not use_winograd(nn.Conv2d(64, 64, 3, padding=1))


@pytest.mark.usefixtures("every_map_size")
def test_features_and_gradients_of_the_caffe_network_agree() -> None:
    """The normalised Caffe VGG-19 through relu5_1: both algorithms, same features and image gradient."""
    layers = ["relu3_1", "relu4_2", "relu5_1"]
    x = rand(1, 3, 64, 48, seed=4)
    results = []
    for algorithm in ("direct", "winograd"):
        config = PAPER.replace(device="cpu", precision="float32", conv_algorithm=algorithm)
        ext = make_extractor(config, layers)
        assert ext.conv_algorithm == algorithm
        xi = x.clone().requires_grad_(True)
        feats = ext(xi, layers)
        sum(f.square().mean() for f in feats.values()).backward()
        results.append((feats, xi.grad))
    (direct, g_direct), (fast, g_fast) = results
    for name in layers:
        assert _rel(fast[name], direct[name]) < 1e-3, name
    assert _rel(g_fast, g_direct) < 1e-3


def test_reflect_and_circular_padding_keep_the_direct_convolution() -> None:
    conv = nn.Conv2d(128, 256, 3, padding=1, padding_mode="circular")
    assert not use_winograd(conv)
    with pytest.raises(ValueError, match="padding-1 convolution"):
        WinogradConv2d(conv)
    extractor = make_extractor(PAPER.replace(network_weights="random", device="cpu",
                                             conv_algorithm="winograd", padding="reflect"))
    assert extractor.conv_algorithm == "direct" and extractor.padding == "reflect"
