"""Tests for nst_utils.layers: the paper's layer names against torchvision's VGG-19."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from nst_utils.layers import (
    LAYER_CHANNELS,
    LAYER_INDEX,
    LAYER_STRIDE,
    LAYERS,
    check_layers,
    deepest,
    names_from_modules,
)


@pytest.fixture(scope="module")
def tv_features() -> nn.Sequential:
    # weights=None: nothing is downloaded. On the meta device: module types and shapes only,
    # without spending seconds initialising 143M parameters.
    with torch.device("meta"):
        return torchvision.models.vgg19(weights=None).features.eval()


# --- smoke / shape -------------------------------------------------------------------------


def test_table_has_37_names_in_network_order():
    assert isinstance(LAYERS, tuple)
    assert len(LAYERS) == 37
    assert len(set(LAYERS)) == 37
    assert LAYERS[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYERS[-3:] == ("conv5_4", "relu5_4", "pool5")
    assert [name for name in LAYERS if name.startswith("pool")] == [f"pool{b}" for b in range(1, 6)]
    assert sum(name.startswith("conv") for name in LAYERS) == 16  # the "19" = 16 conv + 3 fc
    assert sum(name.startswith("relu") for name in LAYERS) == 16


def test_table_matches_torchvision_walk(tv_features):
    assert names_from_modules(tv_features) == LAYERS


@pytest.mark.parametrize(
    ("name", "index", "kind", "in_channels", "out_channels"),
    [
        ("conv1_1", 0, nn.Conv2d, 3, 64),
        ("conv2_2", 7, nn.Conv2d, 128, 128),  # the official PyTorch tutorial's "conv_4"
        ("conv4_2", 21, nn.Conv2d, 512, 512),  # the paper's content layer
        ("conv5_1", 28, nn.Conv2d, 512, 512),
        ("conv3_1", 10, nn.Conv2d, 128, 256),
        ("conv4_1", 19, nn.Conv2d, 256, 512),
        ("relu1_1", 1, nn.ReLU, None, None),
        ("pool1", 4, nn.MaxPool2d, None, None),
        ("pool5", 36, nn.MaxPool2d, None, None),
    ],
)
def test_known_indices_against_torchvision_modules(tv_features, name, index, kind, in_channels, out_channels):
    assert LAYER_INDEX[name] == index
    module = tv_features[index]
    assert isinstance(module, kind)
    if in_channels is not None:
        assert (module.in_channels, module.out_channels) == (in_channels, out_channels)


def test_channels_and_strides_match_a_forward_pass(tv_features):
    # Independent oracle: run torchvision's stack and read each layer's output shape.
    assert set(LAYER_CHANNELS) == set(LAYER_STRIDE) == set(LAYERS)
    size = 64
    x = torch.zeros(1, 3, size, size, device="meta")  # shape propagation only
    with torch.no_grad():
        for name, module in zip(LAYERS, tv_features):
            x = module(x.clone())  # clone: torchvision's ReLU is in place
            assert x.shape[1] == LAYER_CHANNELS[name], name
            assert x.shape[2] == x.shape[3] == size // LAYER_STRIDE[name], name


def test_names_from_modules_accepts_avg_pooling():
    stack = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(4, 4, 3), nn.ReLU())
    assert names_from_modules(stack) == ("conv1_1", "relu1_1", "pool1", "conv2_1", "relu2_1")


# --- exceptions ----------------------------------------------------------------------------


def test_names_from_modules_rejects_batchnorm():
    stack = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    with pytest.raises(TypeError, match="BatchNorm2d"):
        names_from_modules(stack)


def test_check_layers_unknown_names_the_layer_and_lists_valid_ones():
    with pytest.raises(ValueError) as info:
        check_layers(["conv1_1", "conv_4"])
    message = str(info.value)
    assert "'conv_4'" in message
    for name in LAYERS:  # the list comes from the same constant as the code
        assert name in message


def test_check_layers_uses_what_in_message():
    with pytest.raises(ValueError, match=r"^unknown style layer 'conv6_1'"):
        check_layers(["conv6_1"], "style layer")


def test_check_layers_rejects_repeats():
    with pytest.raises(ValueError, match="repeated"):
        check_layers(["conv1_1", "conv2_1", "conv1_1"])
    with pytest.raises(ValueError, match="repeated"):
        check_layers("relu3_1, relu3_1")


# --- parsing / values ----------------------------------------------------------------------


def test_check_layers_returns_tuple_in_given_order():
    assert check_layers(["conv4_2", "conv1_1"]) == ("conv4_2", "conv1_1")
    assert check_layers(iter(["pool3"])) == ("pool3",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("conv1_1,conv2_1", ("conv1_1", "conv2_1")),
        (" conv1_1 , relu2_1 ,conv4_2 ", ("conv1_1", "relu2_1", "conv4_2")),
        ("pool5,", ("pool5",)),
        ("conv5_1", ("conv5_1",)),
        ("", ()),
    ],
)
def test_check_layers_parses_comma_strings(text, expected):
    assert check_layers(text) == expected


def test_check_layers_comma_string_with_unknown_name():
    with pytest.raises(ValueError, match="'conv9_9'"):
        check_layers("conv1_1, conv9_9")


def test_deepest():
    assert deepest(["conv5_1", "conv1_1", "pool3"]) == "conv5_1"
    assert deepest(["relu4_2", "conv4_2"]) == "relu4_2"
    assert deepest(["pool4", "conv4_4", "relu4_4"]) == "pool4"
    assert deepest(["conv1_1"]) == "conv1_1"
    assert deepest(LAYERS[::-1]) == "pool5"


def test_deepest_rejects_empty_and_unknown():
    with pytest.raises(ValueError, match="no layers"):
        deepest([])
    with pytest.raises(ValueError, match="'conv0_1'"):
        deepest(["conv1_1", "conv0_1"])
