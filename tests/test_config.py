"""Tests for nst_utils.config: the paper's defaults in one frozen dataclass, and its validation."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from nst_utils.config import (
    MAX_SIZE,
    MIN_SIZE,
    PAPER,
    RATIO_RANGE,
    TransferConfig,
    field_names,
)

# --- the paper's defaults (analytic values) ------------------------------------------------------


def test_paper_defaults() -> None:
    assert PAPER.content_layers == ("relu4_2",)
    assert PAPER.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    weights = PAPER.layer_weights()
    assert list(weights) == list(PAPER.style_layers)
    assert set(weights.values()) == {0.2}  # equal weights ...
    assert math.isclose(sum(weights.values()), 1.0)  # ... summing to one
    assert PAPER.ratio == 1e-3  # Fig. 3 B
    assert PAPER.optimizer == "lbfgs"
    assert PAPER.pooling == "avg"
    assert PAPER.init == "noise"
    assert PAPER.network_weights == "caffe"
    assert PAPER.tv_weight == 0.0
    assert RATIO_RANGE[0] <= PAPER.ratio <= RATIO_RANGE[1]


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PAPER.ratio = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(("ratio", "beta"), [(1e-3, 1.0), (1e-2, 5.0), (1e-5, 1e4)])
def test_content_weight_is_ratio_times_style_weight(ratio: float, beta: float) -> None:
    cfg = TransferConfig(ratio=ratio, style_weight=beta)
    assert math.isclose(cfg.content_weight, ratio * beta)
    assert math.isclose(cfg.content_weight / cfg.style_weight, ratio)


def test_explicit_layer_weights() -> None:
    cfg = TransferConfig(style_layers=("relu1_1", "relu3_1"), style_layer_weights=(0.75, 0.25))
    assert cfg.layer_weights() == {"relu1_1": 0.75, "relu3_1": 0.25}
    assert TransferConfig(style_layers=("relu2_1",)).layer_weights() == {"relu2_1": 1.0}


def test_layers_given_as_comma_string_or_list_become_tuples() -> None:
    cfg = TransferConfig(content_layers="relu3_2", style_layers=["relu1_1", "relu2_1"])  # type: ignore[arg-type]
    assert cfg.content_layers == ("relu3_2",)
    assert cfg.style_layers == ("relu1_1", "relu2_1")


def test_to_dict_round_trips() -> None:
    cfg = TransferConfig(size=96, steps=7, ratio=1e-2, style_layers=("relu1_1", "relu2_1"),
                         style_layer_weights=(0.3, 0.7), tv_weight=0.5, init="content", optimizer="adam",
                         seed=3, style_scale="own")
    d = cfg.to_dict()
    assert set(d) == set(field_names()) and "extra" not in d
    assert TransferConfig(**d) == cfg
    assert TransferConfig(**PAPER.to_dict()) == PAPER
    # ... and through JSON (lists for tuples), as when read back from a PNG's metadata.
    assert TransferConfig(**json.loads(json.dumps(d))) == cfg


def test_replace_validates() -> None:
    assert PAPER.replace(steps=3).steps == 3
    with pytest.raises(ValueError, match="steps must be at least 1, got 0"):
        PAPER.replace(steps=0)


# --- validation (exceptions with the bad value in the message) -----------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"content_layers": ("relu9_9",)}, "unknown content layer 'relu9_9'; expected one of conv1_1"),
        ({"style_layers": ("relu1_1", "conv_4")}, "unknown style layer 'conv_4'"),
        ({"style_layers": ("relu1_1", "relu1_1")}, "repeated style layer"),
        ({"style_layers": (), "content_layers": ()}, "no layers: give content layers, style layers or both"),
        ({"style_layer_weights": (0.5, -0.1, 0.2, 0.2, 0.2)}, "must not be negative, got 0.5, -0.1, 0.2"),
        ({"style_layer_weights": (0.5, 0.5)}, "2 style layer weights given for 5 style layers"),
        ({"optimizer": "sgd"}, "unknown optimizer 'sgd'; expected one of lbfgs, adam"),
        ({"pooling": "median"}, "unknown pooling 'median'; expected one of max, avg"),
        ({"device": "tpu"}, "unknown device 'tpu'; expected one of auto, cpu, cuda"),
        ({"precision": "float16"}, "unknown precision 'float16'; expected one of auto, float32, bfloat16"),
        ({"network_weights": "imagenet"}, "unknown network_weights 'imagenet'"),
        ({"conv_algorithm": "fft"}, "unknown conv_algorithm 'fft'; expected one of auto, direct, winograd"),
        ({"style_scale": "large"}, "unknown style_scale 'large'"),
        ({"size": MIN_SIZE - 1}, f"size {MIN_SIZE - 1} is out of range; expected 32..4096"),
        ({"size": MAX_SIZE + 1}, f"size {MAX_SIZE + 1} is out of range"),
        ({"steps": 0}, "steps must be at least 1, got 0"),
        ({"steps": -5}, "got -5"),
        ({"ratio": 0.0}, r"ratio \(alpha/beta\) must be positive, got 0.0"),
        ({"ratio": -1e-3}, "got -0.001"),
        ({"ratio": float("nan")}, "got nan"),
        ({"style_weight": 0.0}, "style weight .* must be positive, got 0.0"),
        ({"tv_weight": -1.0}, "tv_weight must not be negative, got -1.0"),
        ({"lbfgs_history": 0}, "lbfgs_history must be at least 1, got 0"),
        ({"adam_lr": -0.5}, "adam_lr must be positive, got -0.5"),
    ],
)
def test_invalid_settings_raise(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TransferConfig(**changes)


@pytest.mark.parametrize("size", [MIN_SIZE, MAX_SIZE])
def test_size_bounds_are_inclusive(size: int) -> None:
    assert TransferConfig(size=size).size == size
