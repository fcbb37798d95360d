"""Colour control (Gatys et al. 2017): YIQ, luminance-only transfer, colour histogram matching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import rand

from nst_utils import PAPER
from nst_utils.color import (
    color_statistics,
    gray,
    luminance,
    luminance_inputs,
    match_color,
    match_luminance,
    recombine,
    restore_colors,
    rgb_to_yiq,
    yiq_to_rgb,
)
from nst_utils.images import load_image
from nst_utils.recipes import transfer


@pytest.fixture(scope="module")
def held_out_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A photograph and a painting that the colour code was not developed on:
    scikit-image's cat and Turner's shipwreck (notebook 04 uses the Neckarfront)."""
    from PIL import Image
    from skimage import data

    photo = load_image(Image.fromarray(data.chelsea()), 96)
    return photo, load_image("shipwreck", tuple(photo.shape[-2:]))


def test_yiq_round_trip_and_luminance_weights(photo):
    torch.testing.assert_close(yiq_to_rgb(rgb_to_yiq(photo)), photo, atol=1e-5, rtol=0)
    r, g, b = photo[:, 0], photo[:, 1], photo[:, 2]
    torch.testing.assert_close(luminance(photo)[:, 0], 0.299 * r + 0.587 * g + 0.114 * b)
    grey = torch.full((1, 3, 4, 4), 0.3)
    assert rgb_to_yiq(grey)[:, 1:].abs().max() < 1e-6  # grey has no chroma


def test_match_luminance_takes_the_contents_mean_and_spread():
    style, content = rand(1, 1, 20, 30) * 0.2 + 0.7, rand(1, 1, 25, 25, seed=1) * 0.8
    matched = match_luminance(style, content)
    assert matched.mean().item() == pytest.approx(content.mean().item(), abs=1e-5)
    assert matched.std().item() == pytest.approx(content.std().item(), rel=1e-4)
    flat = match_luminance(torch.full((1, 1, 4, 4), 0.9), content)  # no spread: only shifted
    assert torch.allclose(flat, torch.full_like(flat, content.mean().item()))


def test_recombine_keeps_the_contents_chroma_exactly_even_out_of_gamut(photo):
    result = rand(1, 3, 64, 64)  # any luminance at all
    out = recombine(result, photo)
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(rgb_to_yiq(out)[:, 1:], rgb_to_yiq(photo)[:, 1:], atol=1e-5, rtol=0)
    inside = (luminance(out) - luminance(result)).abs() < 1e-6  # Y kept wherever it was in gamut
    assert inside.float().mean() > 0.5


def test_only_a_luminance_only_run_takes_the_photos_colours_back(photo):
    result = rand(1, 3, 64, 64)
    torch.testing.assert_close(restore_colors(result, photo, "luminance"), recombine(result, photo))
    assert restore_colors(result, photo, "none") is result
    assert restore_colors(result, photo, "histogram") is result  # its colours were matched before the run
    with pytest.raises(ValueError, match="unknown preserve_color 'yiq'; expected one of none, luminance"):
        restore_colors(result, photo, "yiq")


def test_luminance_inputs_are_grey_images(photo):
    content, style = luminance_inputs(photo, rand(1, 3, 32, 48))
    for image in (content, style):
        assert image.shape[1] == 3
        assert torch.equal(image[:, 0], image[:, 1]) and torch.equal(image[:, 1], image[:, 2])
    torch.testing.assert_close(content, gray(luminance(photo)))


@pytest.mark.parametrize("basis", ["symmetric", "cholesky"])
def test_histogram_matching_gives_the_style_the_contents_colour_statistics(held_out_pair, basis):
    photo, painting = held_out_pair
    matched = match_color(painting, photo, basis)
    mean_c, cov_c = color_statistics(photo)
    mean_m, cov_m = color_statistics(matched)
    assert torch.allclose(mean_m, mean_c, atol=0.02 * mean_c.abs().max().item())
    assert (cov_m - cov_c).norm() / cov_c.norm() < 0.05  # "within a few percent" (clipping moves it)
    assert (color_statistics(painting)[1] - cov_c).norm() / cov_c.norm() > 0.2  # it did have to move


def test_the_two_bases_differ_but_both_match():
    content, style = rand(1, 3, 40, 40), rand(1, 3, 40, 40, seed=1) ** 3
    a, b = match_color(style, content, "symmetric"), match_color(style, content, "cholesky")
    assert not torch.allclose(a, b, atol=1e-3)
    with pytest.raises(ValueError, match="unknown color_basis 'pca'"):
        match_color(style, content, "pca")


def test_luminance_only_transfer_keeps_the_photographs_chroma_and_stylises_its_luminance(held_out_pair):
    photo, painting = held_out_pair
    cfg = PAPER.replace(size=max(photo.shape[-2:]), steps=15, device="cpu", init="content",
                        style_layers=("relu1_1", "relu2_1", "relu3_1"), ratio=1e-4,
                        preserve_color="luminance")
    result = transfer(photo, painting, cfg)
    iq_out, iq_photo = rgb_to_yiq(result.image)[:, 1:], rgb_to_yiq(photo)[:, 1:]
    torch.testing.assert_close(iq_out, iq_photo, atol=1e-4, rtol=0)
    change = (luminance(result.image) - luminance(photo)).abs().mean().item()
    assert change > 0.02  # the luminance did take the style
    plain = transfer(photo, painting, cfg.replace(preserve_color="none"))
    moved = (rgb_to_yiq(plain.image)[:, 1:] - iq_photo).abs().mean().item()
    assert moved > 10 * (iq_out - iq_photo).abs().mean().item()  # without it the colours move
    assert result.metadata()["config"]["preserve_color"] == "luminance"


def test_histogram_transfer_runs_on_the_matched_style(held_out_pair, monkeypatch):
    photo, painting = held_out_pair
    seen = {}
    from nst_utils import recipes

    real_run = recipes.run

    def spy(config, **kwargs):
        (seen["style"],) = kwargs["style"]  # the one (recoloured) style image
        return real_run(config, **kwargs)

    monkeypatch.setattr(recipes, "run", spy)
    cfg = PAPER.replace(size=max(photo.shape[-2:]), steps=1, device="cpu", network_weights="random",
                        preserve_color="histogram")
    transfer(photo, painting, cfg)
    np.testing.assert_allclose(color_statistics(seen["style"])[0], color_statistics(photo)[0], atol=0.02)
