"""Spatial control (Gatys et al. 2017): masks, guided Gram matrices, a style per region."""

from __future__ import annotations

import pytest
import torch
from helpers import rand
from PIL import Image

from nst_utils import PAPER
from nst_utils.images import load_image
from nst_utils.losses import gram_matrix, guided_gram_matrix, guided_style_layer_loss, style_layer_loss
from nst_utils.masks import feature_shape, layer_masks, load_mask, mask_at, split_masks
from nst_utils.recipes import transfer
from nst_utils.samples import sample_image


def test_split_masks_are_complementary_halves():
    top, bottom = split_masks((10, 6), 0.3)
    assert top[..., :3, :].eq(1).all() and top[..., 3:, :].eq(0).all()
    torch.testing.assert_close(top + bottom, torch.ones(1, 1, 10, 6))
    left, _ = split_masks((4, 8), 0.25, "vertical")
    assert left[..., :2].eq(1).all() and left[..., 2:].eq(0).all()
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_masks((4, 4), 1.0)


def test_feature_shape_follows_the_poolings():
    assert feature_shape((100, 75), "relu1_1") == (100, 75)
    assert feature_shape((100, 75), "relu3_1") == (25, 18)
    assert feature_shape((100, 75), "pool5") == (3, 2)


def test_inside_erodes_at_the_border_and_simple_does_not():
    top, _ = split_masks((32, 32))
    simple = mask_at(top, (8, 8), "simple")
    inside = mask_at(top, (8, 8), "inside")
    assert simple[..., :4, :].eq(1).all() and simple[..., 4:, :].eq(0).all()
    assert inside[..., :3, :].eq(1).all() and inside[..., 3:, :].eq(0).all()  # one row eroded
    assert mask_at(torch.ones(1, 1, 16, 16), (4, 4)).eq(1).all()  # the image's edge is no boundary
    masks = layer_masks(top, ["relu1_1", "relu4_1"])
    assert masks["relu1_1"].shape[-2:] == (32, 32) and masks["relu4_1"].shape[-2:] == (4, 4)


def test_a_full_mask_gives_the_papers_style_loss():
    feats, other = torch.rand(1, 8, 12, 10), torch.rand(1, 8, 12, 10)
    full = torch.ones(1, 1, 12, 10)
    torch.testing.assert_close(guided_gram_matrix(feats, full), gram_matrix(feats) / 120)
    target = guided_gram_matrix(other, full)
    torch.testing.assert_close(guided_style_layer_loss(feats, full, target),
                               style_layer_loss(feats, gram_matrix(other)))


def test_the_guided_gram_sees_only_its_region():
    feats = torch.rand(1, 4, 8, 8)
    top, bottom = split_masks((8, 8))
    changed = feats.clone()
    changed[..., 4:, :] = 5.0  # only the bottom half changes
    torch.testing.assert_close(guided_gram_matrix(changed, top), guided_gram_matrix(feats, top))
    assert not torch.allclose(guided_gram_matrix(changed, bottom), guided_gram_matrix(feats, bottom))
    assert guided_gram_matrix(feats, torch.zeros(1, 1, 8, 8)).abs().max() == 0  # empty: zeros, no NaN


def test_load_mask_refuses_a_mask_of_another_aspect_or_an_unreadable_file(tmp_path):
    path = tmp_path / "mask.png"
    Image.new("L", (80, 60), 255).save(path)
    assert load_mask(path, (60, 80)).eq(1).all()
    with pytest.raises(ValueError, match=r"mask\.png: mask is 80x60 pixels, a different shape from the image "
                                         r"\(64x64\); draw it over the image at any size of the same aspect"):
        load_mask(path, (64, 64))
    with pytest.raises(ValueError, match=r"mask is 400x400 pixels, .* the image \(512x341\)"):
        load_mask(torch.ones(400, 400), (341, 512))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png: not an image"):
        load_mask(tmp_path / "broken.png", (60, 80))


@pytest.mark.parametrize("size", [128, 512])
def test_a_mask_drawn_at_the_photographs_resolution_loads_at_any_run_size(tmp_path, size):
    photo = sample_image("tubingen")  # 1024 x 768
    sky = Image.new("L", photo.size, 0)
    sky.paste(255, (0, 0, photo.width, photo.height // 2))  # white over the top half
    sky.save(tmp_path / "sky.png")
    shape = tuple(load_image("tubingen", size).shape[-2:])
    mask = load_mask(tmp_path / "sky.png", shape)
    assert mask.shape == (1, 1, *shape)
    assert mask.min() >= 0 and mask.max() <= 1
    assert mask[..., : shape[0] // 2 - 1, :].eq(1).all() and mask[..., shape[0] // 2 + 1 :, :].eq(0).all()


def test_a_mask_a_pixel_off_by_rounding_is_scaled_to_the_image():
    # 1024x683 halves to 512x341.5: the image was rounded to 341 rows, the mask's scale to 342.
    shrunk = load_mask(torch.full((683, 1024), 0.5), (341, 512))
    assert shrunk.shape == (1, 1, 341, 512)
    torch.testing.assert_close(shrunk, torch.full((1, 1, 341, 512), 0.5))
    # Enlarged from a thumbnail (100x67 is 512x343.04 scaled up; 512x341 is 100x66.6 scaled down).
    top = torch.zeros(67, 100)
    top[:30] = 1
    enlarged = load_mask(top, (341, 512))
    assert enlarged.shape == (1, 1, 341, 512) and enlarged.min() >= 0 and enlarged.max() <= 1
    assert enlarged[..., :140, :].eq(1).all() and enlarged[..., 170:, :].eq(0).all()


def test_masks_must_match_the_styles_and_the_content():
    content = torch.rand(1, 3, 48, 64)
    cfg = PAPER.replace(size=64, steps=1, network_weights="random", device="cpu")
    with pytest.raises(ValueError, match="1 masks given for 2 styles"):
        transfer(content, [content, content], cfg, masks=[torch.ones(1, 1, 48, 64)])
    with pytest.raises(ValueError, match=r"mask is 64x64 pixels, a different shape from the image \(64x48\)"):
        transfer(content, [content, content], cfg, masks=split_masks((64, 64)))
    with pytest.raises(ValueError, match="mask 2 is empty"):
        transfer(content, [content, content], cfg,
                 masks=[torch.ones(1, 1, 48, 64), torch.zeros(1, 1, 48, 64)])


def _flat(rgb, shape=(64, 64)):
    return torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, *shape).contiguous()


def test_each_region_takes_its_own_style_and_not_the_other():
    """Red style on the top half, blue on the bottom, from a grey start: measured by colour."""
    grey = _flat((0.5, 0.5, 0.5))
    red, blue = _flat((0.85, 0.15, 0.15)), _flat((0.15, 0.15, 0.85))
    cfg = PAPER.replace(size=64, steps=40, device="cpu", ratio=1e-6, init="content",
                        style_layers=("relu1_1", "relu2_1"), content_layers=("relu2_1",))
    result = transfer(grey, [red, blue], cfg, masks=split_masks((64, 64)))
    image = result.image[0]
    top, bottom = image[:, 4:28].mean(dim=(1, 2)), image[:, 36:60].mean(dim=(1, 2))
    assert top[0] - top[2] > 0.2, top  # red above
    assert bottom[2] - bottom[0] > 0.2, bottom  # blue below


def test_a_blend_with_all_weight_on_one_style_is_that_style():
    content, first, second = (rand(1, 3, 48, 48, seed=i) for i in range(3))
    cfg = PAPER.replace(size=48, steps=3, device="cpu", network_weights="random")
    alone = transfer(content, first, cfg)
    blended = transfer(content, [first, second], cfg.replace(style_blend=(2.0, 0.0)))
    assert [h.total for h in blended.history] == pytest.approx([h.total for h in alone.history], rel=1e-5)
    halves = transfer(content, [first, second], cfg.replace(style_blend=(1.0, 1.0)))
    assert halves.history[0].total != pytest.approx(alone.history[0].total, rel=1e-3)


def test_a_style_mask_takes_the_style_from_a_region_of_the_painting():
    """A painting red on top, blue below; its mask picks the red half, so the output turns red."""
    painting = torch.cat([_flat((0.85, 0.15, 0.15), (32, 64)), _flat((0.15, 0.15, 0.85), (32, 64))], dim=2)
    grey = _flat((0.5, 0.5, 0.5))
    cfg = PAPER.replace(size=64, steps=30, device="cpu", ratio=1e-6, init="content",
                        style_layers=("relu1_1", "relu2_1"), content_layers=("relu2_1",))
    full = torch.ones(1, 1, 64, 64)
    top, _ = split_masks((64, 64))
    red = transfer(grey, [painting], cfg, masks=[full], style_masks=[top]).image[0].mean(dim=(1, 2))
    assert red[0] - red[2] > 0.2, red
    with pytest.raises(ValueError, match="2 style masks given for 1 style images"):
        transfer(grey, [painting], cfg, masks=[full], style_masks=[top, top])
