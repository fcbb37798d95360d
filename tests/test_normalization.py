"""nst_utils.normalization: the stored filter means (one set per pooling), the per-channel
scales derived from them (with the floor on rarely firing filters), and, slowly, that
scripts/compute_filter_means.py re-measures the same means."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import load_script

from nst_utils.config import POOLINGS
from nst_utils.layers import LAYER_CHANNELS, LAYERS
from nst_utils.normalization import FILTER_MEANS_PATH, MIN_MEAN_FRACTION, load_filter_scales

CONVS = [name for name in LAYERS if name.startswith("conv")]


@pytest.fixture(scope="module")
def stored() -> dict:
    return torch.load(FILTER_MEANS_PATH, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module", params=POOLINGS)
def pooling(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def scales(pooling) -> dict[str, torch.Tensor]:
    return load_filter_scales(pooling)


def _lower_median(values: torch.Tensor) -> float:
    """The lower of the two middle values (torch.median's convention), by sorting in Python."""
    ordered = sorted(float(v) for v in values)
    return ordered[(len(ordered) - 1) // 2]


def test_stored_means_cover_every_conv_with_positive_finite_values(stored) -> None:
    assert set(stored["means"]) == set(POOLINGS)
    for pooling in POOLINGS:
        assert set(stored["means"][pooling]) == set(CONVS) and len(CONVS) == 16
    for name, mean in [(n, m) for p in POOLINGS for n, m in stored["means"][p].items()]:
        assert mean.shape == (LAYER_CHANNELS[name],), name
        assert torch.isfinite(mean).all() and (mean > 0).all(), name
    # Nine colour photographs, each at the two reference sizes.
    names = stored["images"]
    assert len(names) == 18 and len(set(names)) == 18
    assert {n.rsplit("@", 1)[1] for n in names} == {"256", "512"}


def test_scales_cover_all_37_layers(scales) -> None:
    assert len(LAYERS) == 37 and list(scales) == list(LAYERS)
    for name, scale in scales.items():
        assert scale.shape == (LAYER_CHANNELS[name],), name
        assert scale.dtype == torch.float32, name
        assert torch.isfinite(scale).all() and (scale > 0).all(), name


def test_average_pooling_means_equal_max_in_the_first_block_and_fall_below_it_above(stored) -> None:
    """Pooling first acts after block 1; a 2x2 average is at most the 2x2 maximum, and the
    shortfall compounds block after block, so the deeper a layer, the lower its median ratio."""
    means = stored["means"]
    for conv in ("conv1_1", "conv1_2"):
        torch.testing.assert_close(means["avg"][conv], means["max"][conv], rtol=1e-6, atol=0)
    ratios = [float((means["avg"][c] / means["max"][c]).median()) for c in
              ("conv2_1", "conv3_1", "conv4_1", "conv5_1")]
    assert all(r < 1 for r in ratios) and ratios == sorted(ratios, reverse=True), ratios
    assert ratios[-1] < 0.5, ratios  # why the means must be measured per pooling


def test_unknown_pooling_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown pooling 'median'; expected one of max, avg"):
        load_filter_scales("median")


def test_scales_are_reciprocal_floored_means(stored, scales, pooling) -> None:
    """Re-derived independently: scale = 1 / max(mean, MIN_MEAN_FRACTION * median of the layer)."""
    for conv in CONVS:
        mean = stored["means"][pooling][conv]
        floor = MIN_MEAN_FRACTION * _lower_median(mean)
        expected = torch.tensor([1.0 / max(float(m), floor) for m in mean])
        relu = "relu" + conv[4:]
        torch.testing.assert_close(scales[conv], expected, rtol=1e-6, atol=0)
        assert torch.equal(scales[relu], scales[conv]), relu  # ReLU commutes with a positive scale


def test_no_scale_exceeds_the_floor_times_the_median_scale(stored, scales, pooling) -> None:
    floored_layers = 0
    for conv in CONVS:
        mean, scale = stored["means"][pooling][conv], scales[conv]
        # The median filter's scale: 1 / (the layer's median mean), never floored itself.
        median_mean, median_index = mean.median(dim=0)
        median_scale = float(scale[median_index])
        assert median_scale == pytest.approx(1.0 / float(median_mean), rel=1e-6)
        limit = median_scale / MIN_MEAN_FRACTION
        assert float(scale.max()) <= limit * (1 + 1e-6), conv
        floored = mean < MIN_MEAN_FRACTION * float(median_mean)
        if floored.any():
            floored_layers += 1
            # Every floored filter sits exactly at the limit; the others keep 1 / mean.
            torch.testing.assert_close(scale[floored], torch.full_like(scale[floored], limit),
                                       rtol=1e-6, atol=0)
        torch.testing.assert_close(scale[~floored], 1.0 / mean[~floored], rtol=1e-6, atol=0)
    assert floored_layers >= 1  # the floor is not a no-op on these data
    # The module's own example: conv1_1's filter 12 (a saturated-blue detector) fires rarely.
    conv1_1 = stored["means"][pooling]["conv1_1"]
    assert int(conv1_1.argmin()) == 12 and float(conv1_1[12]) < MIN_MEAN_FRACTION * float(conv1_1.median())


def test_pool_taps_reuse_the_preceding_relu_scale(scales) -> None:
    pools = [name for name in LAYERS if name.startswith("pool")]
    assert len(pools) == 5
    for pool in pools:
        relu = LAYERS[LAYERS.index(pool) - 1]
        assert relu.startswith("relu") and relu[4] == pool[4]
        assert torch.equal(scales[pool], scales[relu]), pool


@pytest.mark.slow
def test_remeasured_means_reproduce_the_stored_file(stored) -> None:
    """``scripts/compute_filter_means.py`` from scratch: ~1 min on 2 CPU cores."""
    pytest.importorskip("skimage")
    script = load_script("compute_filter_means")
    images = script.reference_images()
    assert [name for name, _ in images] == stored["images"]
    for name, image in images:
        side = int(name.rsplit("@", 1)[1])  # a thumbnail: longest side <= side, never enlarged
        assert image.shape[:2] == (1, 3) and max(image.shape[-2:]) <= side, name
        assert side != 256 or max(image.shape[-2:]) == 256, name  # every photo is at least 256 px
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0, name
    for pooling in POOLINGS:
        measured = script.measure_filter_means(images, pooling)
        assert set(measured) == set(stored["means"][pooling])
        for conv, mean in stored["means"][pooling].items():
            worst = float(((measured[conv] - mean).abs() / mean).max())
            assert math.isfinite(worst) and worst < 1e-3, f"{pooling} {conv}: relative difference {worst:.2e}"
