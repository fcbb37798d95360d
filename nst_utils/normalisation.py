"""The paper's normalised VGG-19: every filter's mean activation over images is one.

Gatys et al. (2016, sec. 2): "We used the feature space provided by a normalized version of
the 16 convolutional and 5 pooling layers of the 19-layer VGG network. We normalized the
network by scaling the weights such that the mean activation of each convolutional filter
over images and positions is equal to one." Scaling filter ``i`` of layer ``l`` by ``s`` and
its input weights in layer ``l+1`` by ``1/s`` leaves the network's function unchanged and
multiplies that channel's conv, ReLU and pooling outputs by ``s`` (ReLU and pooling commute
with a positive scale). So the normalised network's features are the original features times
a per-channel constant: :class:`~nst_utils.features.VGG19Features` applies it to each tap.

Without it, the Caffe network's layers differ by six orders of magnitude in their style loss,
conv4_1 drowns the others, and the paper's α/β values mean nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .layers import LAYERS

FILTER_MEANS_PATH = Path(__file__).with_name("data") / "vgg19_caffe_filter_means.pt"
#: A filter almost silent on the reference images would get a huge scale and dominate any image
#: that happens to excite it; its mean is floored at this fraction of its layer's median.
MIN_MEAN_FRACTION = 0.01
REFERENCE_SIZE = 256


def _photo_paths() -> list[tuple[str, Path]]:
    import matplotlib
    import skimage

    mpl = Path(matplotlib.get_data_path()) / "sample_data"
    ski = Path(skimage.__file__).parent / "data"
    names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
             "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "camera.png", "coins.png", "moon.png",
             "brick.png", "grass.png", "gravel.png", "clock_motion.png", "page.png"]
    return [("grace_hopper.jpg", mpl / "grace_hopper.jpg")] + [(n, ski / n) for n in names]


def reference_images() -> list[tuple[str, Tensor]]:
    """Natural photographs shipped in matplotlib's and scikit-image's wheels, longest side 256."""
    out = []
    for name, path in _photo_paths():
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((REFERENCE_SIZE, REFERENCE_SIZE), Image.Resampling.LANCZOS)
            arr = np.asarray(im, dtype=np.float32) / 255.0
        out.append((name, torch.from_numpy(arr.copy()).permute(2, 0, 1)[None]))
    return out


@torch.no_grad()
def measure_filter_means(images: list[tuple[str, Tensor]]) -> dict[str, Tensor]:
    """Mean ReLU activation of every conv filter of the Caffe VGG-19 (max pooling).

    Each image counts equally (mean over its positions, then over images).
    """
    from .features import VGG19Features

    model = VGG19Features("caffe", "max", normalise=False)
    relus = [name for name in LAYERS if name.startswith("relu")]
    sums = {name: torch.zeros(0) for name in relus}
    for _, image in images:
        feats = model(image, relus)
        for name in relus:
            mean = feats[name].mean(dim=(0, 2, 3))
            sums[name] = mean if sums[name].numel() == 0 else sums[name] + mean
    return {name.replace("relu", "conv"): total / len(images) for name, total in sums.items()}


def load_filter_scales() -> dict[str, Tensor]:
    """Per-channel scale ``1 / mean`` for every layer name (conv, relu and pool taps).

    A pool tap takes the scale of the ReLU before it. A filter that barely fired on the
    reference images has its mean floored at ``MIN_MEAN_FRACTION`` of its layer's median.
    """
    means = torch.load(FILTER_MEANS_PATH, map_location="cpu", weights_only=True)["means"]
    scales: dict[str, Tensor] = {}
    last: Tensor | None = None
    for name in LAYERS:
        if name.startswith("pool"):
            assert last is not None
            scales[name] = last
            continue
        conv = "conv" + name[4:]
        mean = means[conv]
        last = 1.0 / mean.clamp_min(MIN_MEAN_FRACTION * float(mean.median()))
        scales[name] = last
    return scales
