"""Spatial control (Gatys et al., CVPR 2017, sec. 4): a style per region, with guided Gram matrices.

A *mask* ``T_r`` (the paper's "guidance channel") is a tensor in ``[0, 1]`` the size of an image
that says where region ``r`` is: the sky, the houses. To style each region of the output with its
own style, the Gram matrices are computed on the features weighted by the region's mask (the
paper's *guided* Gram matrix, :func:`nst_utils.losses.guided_gram_matrix`), for the output with the
output's masks and for each style image with its own (all ones when the whole painting is the
region's style).

The masks must be known at every style layer's resolution. The network halves the resolution at
each pooling, and each feature there sees a receptive field that grows with depth, so the mask of
a layer is the image's mask reduced to that layer's map size (``"simple"``, area averaging),
optionally *eroded* so that a feature counts only where its 3x3 neighbourhood lies inside the
region (``"inside"``, the default): near a border, features mix both regions' content, and
leaving the nearest ones out keeps each region's statistics cleaner. This is a lighter version of
the 2017 paper's "inside" guidance, which keeps only features whose whole receptive field lies in
the region (the authors' code probes the network for it); one 3x3 step per layer trims far less
than a deep layer's receptive field.

Masks come from images (any grey or colour image; grey values are the region's weight, its
complement the other region's) or from :func:`split_masks`, a horizontal (sky/ground) or vertical
split. An image mask is drawn over the photograph at any size of its aspect ratio, such as the
photograph's own resolution: :func:`load_mask` scales it to the run's size. All masks here are
float32 ``(1, 1, H, W)`` tensors in ``[0, 1]``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import MASK_MODES, check_choice
from .images import load_image, target_size
from .layers import LAYER_STRIDE

#: Erosion neighbourhood for "inside": the 3x3 receptive field of one more convolution.
ERODE = 3


def split_masks(shape: tuple[int, int], fraction: float = 0.5,
                 direction: str = "horizontal") -> list[Tensor]:
    """Two complementary masks for an image of ``shape`` ``(H, W)``: with ``"horizontal"``, the
    top ``fraction`` of the rows (the sky) and the rest (the ground); ``"vertical"``: left and right."""
    if not 0 < fraction < 1:
        raise ValueError(f"split fraction must lie strictly between 0 and 1, got {fraction}")
    check_choice(direction, ("horizontal", "vertical"), "direction")
    h, w = shape
    first = torch.zeros(1, 1, h, w)
    if direction == "horizontal":
        first[..., : round(h * fraction), :] = 1
    else:
        first[..., :, : round(w * fraction)] = 1
    return [first, 1 - first]


def load_mask(source: str | os.PathLike | Tensor, shape: tuple[int, int]) -> Tensor:
    """A mask from an image file (or a tensor) drawn over an image, scaled to its ``shape`` ``(H, W)``;
    a file's luminance is the weight.

    The mask may have any size of the image's aspect ratio, such as the photograph's own
    resolution, so a run at another size needs no new masks: it is area-averaged when shrunk and
    bilinear when enlarged. Raises ``ValueError`` (one line, naming the file) for an unreadable
    file or a mask of another aspect ratio: drawn over another image, it would put the regions in
    the wrong place.

    Examples:
        >>> load_mask(torch.ones(682, 1024), (341, 512)).shape
        torch.Size([1, 1, 341, 512])
    """
    if isinstance(source, Tensor):
        mask = source.detach().float()
        while mask.dim() < 4:
            mask = mask.unsqueeze(0)
        name = "the mask tensor"
    else:
        from .color import luminance

        name = str(source)
        mask = luminance(load_image(source))  # ImageError (a ValueError) names an unreadable file
    if mask.dim() != 4 or mask.shape[:2] != (1, 1):
        if mask.dim() == 4 and mask.shape[1] == 3:
            mask = mask.mean(dim=1, keepdim=True)
        else:
            raise ValueError(f"{name}: a mask must be one channel (H, W), got shape {tuple(mask.shape)}")
    return _scaled(mask, tuple(shape), name).clamp(0, 1)


def _scaled(mask: Tensor, shape: tuple[int, int], name: str) -> Tensor:
    """``mask`` resized to ``shape`` if it has the same aspect ratio, else a one-line error."""
    height, width = mask.shape[-2:]
    if (height, width) == shape:
        return mask
    # Same aspect ratio: the larger of the two, scaled to the smaller's longest side, has the
    # smaller's shape up to a pixel of rounding per side (compared where pixels are coarsest).
    small, large = sorted([(height, width), shape], key=max)
    fitted = target_size(large[1], large[0], max(small))
    if any(abs(got - want) > 1 for got, want in zip(fitted, small)):
        raise ValueError(
            f"{name}: mask is {width}x{height} pixels, a different shape from the image "
            f"({shape[1]}x{shape[0]}); draw it over the image at any size of the same aspect ratio"
        )
    if max(height, width) > max(shape):  # shrinking: each pixel the mean of the area it covers
        return F.interpolate(mask, size=shape, mode="area")
    return F.interpolate(mask, size=shape, mode="bilinear", align_corners=False)


def mask_at(mask: Tensor, shape: tuple[int, int], mode: str = "inside") -> Tensor:
    """``mask`` carried to a feature map of ``shape`` ``(H_l, W_l)``: area-averaged, then (``"inside"``)
    eroded so that only features whose 3x3 neighbourhood lies inside the region keep their weight."""
    check_choice(mode, MASK_MODES, "mask_mode")
    small = F.adaptive_avg_pool2d(mask, shape) if tuple(mask.shape[-2:]) != tuple(shape) else mask
    if mode == "inside":
        # Erosion is a minimum over the neighbourhood: minus the max-pool of minus the mask.
        # Replicated borders: the image's edge is not a region boundary.
        padded = F.pad(-small, (ERODE // 2,) * 4, mode="replicate")
        small = -F.max_pool2d(padded, ERODE, stride=1)
    return small


def check_masks(masks: Sequence[Tensor], count: int | None = None) -> None:
    """None empty, and (unless ``count`` is None) one mask per style."""
    if count is not None and len(masks) != count:
        raise ValueError(f"{len(masks)} masks given for {count} styles; give one mask per style")
    for index, m in enumerate(masks):
        if float(m.sum()) == 0:
            raise ValueError(f"mask {index + 1} is empty: its region has no pixel")


def feature_shape(shape: tuple[int, int], layer: str) -> tuple[int, int]:
    """The map size ``(H_l, W_l)`` of ``layer`` for an input of ``shape``: each 2x2 pooling
    before it halves each side, rounding down."""
    stride = LAYER_STRIDE[layer]
    return shape[0] // stride, shape[1] // stride


def layer_masks(mask: Tensor, layers: Iterable[str], mode: str = "inside") -> dict[str, Tensor]:
    """``{layer: the mask at that layer's resolution}``."""
    shape = tuple(mask.shape[-2:])
    return {name: mask_at(mask, feature_shape(shape, name), mode) for name in layers}
