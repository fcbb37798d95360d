"""The figure helpers show images pixel for pixel: whole-number enlargements, never shrunk."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import rand

from nst_utils import plotting
from nst_utils.images import to_display


def _canvas(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3]


def _contains(canvas: np.ndarray, block: np.ndarray) -> bool:
    """Whether ``block`` (h, w, 3) appears somewhere in ``canvas``, each value within one step of
    255 (matplotlib truncates where we round)."""
    h, w = block.shape[:2]
    canvas = canvas.astype(np.int16)
    near = (np.abs(canvas[: canvas.shape[0] - h + 1, : canvas.shape[1] - w + 1] - block[0, 0]) <= 1).all(-1)
    return any((np.abs(canvas[y:y + h, x:x + w] - block) <= 1).all() for y, x in zip(*np.nonzero(near)))


def _expected(image: torch.Tensor, k: int) -> np.ndarray:
    pixels = (np.asarray(to_display(image)) * 255).round().astype(np.uint8)
    return pixels.repeat(k, axis=0).repeat(k, axis=1).astype(np.int16)


@pytest.mark.parametrize("scale", [1, 3])
def test_an_image_is_drawn_as_exact_blocks_of_its_pixels(scale: int) -> None:
    image = rand(1, 3, 6, 8, seed=1)
    fig = plotting.show_images([image], ["t"], scale=scale)
    assert _contains(_canvas(fig), _expected(image, scale))


def test_the_default_scale_is_the_largest_that_fits_and_never_below_one() -> None:
    small, large = rand(1, 3, 40, 50, seed=2), rand(1, 3, 300, 900, seed=3)
    fig = plotting.show_images([small])
    assert _contains(_canvas(fig), _expected(small, plotting.MAX_WIDTH_PX // 50))
    wide = plotting.show_images([large])  # wider than the page: shown 1:1, not shrunk
    assert wide.get_size_inches()[0] * wide.dpi >= 900


def test_a_grid_enlarges_each_image_to_its_cell() -> None:
    big, tiny = rand(1, 3, 16, 16, seed=4), rand(1, 3, 4, 4, seed=5)
    fig = plotting.show_grid([[big, tiny]], ["row"], ["a", "b"], cell=32)
    canvas = _canvas(fig)
    assert _contains(canvas, _expected(big, 2)) and _contains(canvas, _expected(tiny, 8))


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="at least one image"):
        plotting.show_images([])
    with pytest.raises(ValueError, match="2 titles for 1 images"):
        plotting.show_images([rand(1, 3, 4, 4)], ["a", "b"])
    with pytest.raises(ValueError, match="scale must be a whole number"):
        plotting.show_images([rand(1, 3, 4, 4)], scale=0)
