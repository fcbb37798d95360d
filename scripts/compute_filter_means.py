"""Regenerate ``nst_utils/data/vgg19_caffe_filter_means.pt``, the data behind the paper's
normalised network (:mod:`nst_utils.normalization`).

Gatys et al. use "a normalised version of the VGG network": weights rescaled so that the mean
activation of each filter over images and positions is one. Because ReLU and pooling commute
with a positive per-channel scale, that network's features are the original features times
``1 / mean`` per channel; this script measures those means (after ReLU) over the natural
photographs that ship in matplotlib's and scikit-image's wheels, twice: with max pooling (as the
network was trained) and with average pooling (as the paper synthesises), since the means of
every layer above the first block depend on it. The paper used ImageNet, which cannot be
downloaded here.

Run: ``python scripts/compute_filter_means.py`` (needs scikit-image, in the ``dev`` extra).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from nst_utils.config import POOLINGS
from nst_utils.features import VGG19Features
from nst_utils.layers import LAYERS
from nst_utils.normalization import FILTER_MEANS_PATH

#: Each photograph at two scales (longest side): objects at two sizes, a crop-free stand-in for ImageNet.
REFERENCE_SIZES = (256, 512)


def photo_paths() -> list[tuple[str, Path]]:
    import matplotlib
    import skimage

    mpl = Path(matplotlib.get_data_path()) / "sample_data"
    ski = Path(skimage.__file__).parent / "data"
    # Colour photographs only: a grayscale image leaves colour-opponent filters silent, and
    # averaging it in would shrink their means and blow up their scale on any colourful image.
    names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
             "hubble_deep_field.jpg", "ihc.png", "retina.jpg"]
    return [("grace_hopper.jpg", mpl / "grace_hopper.jpg")] + [(n, ski / n) for n in names]


def reference_images() -> list[tuple[str, Tensor]]:
    """The photographs of :func:`photo_paths`, each at the :data:`REFERENCE_SIZES`."""
    out = []
    for name, path in photo_paths():
        for side in REFERENCE_SIZES:
            with Image.open(path) as im:
                im = im.convert("RGB")
                im.thumbnail((side, side), Image.Resampling.LANCZOS)
                arr = np.asarray(im, dtype=np.float32) / 255.0
            out.append((f"{name}@{side}", torch.from_numpy(arr.copy()).permute(2, 0, 1)[None]))
    return out


@torch.no_grad()
def measure_filter_means(images: list[tuple[str, Tensor]], pooling: str = "max") -> dict[str, Tensor]:
    """Mean ReLU activation of every conv filter of the Caffe VGG-19 with ``pooling``, keyed by
    conv name. Each image counts equally (mean over its positions, then over images)."""
    model = VGG19Features("caffe", pooling, normalize=False)
    relus = [name for name in LAYERS if name.startswith("relu")]
    sums: dict[str, Tensor] = {}
    for _, image in images:
        for name, feats in model(image, relus).items():
            mean = feats.mean(dim=(0, 2, 3))
            sums[name] = sums[name] + mean if name in sums else mean
    return {name.replace("relu", "conv"): total / len(images) for name, total in sums.items()}


def main() -> None:
    images = reference_images()
    means = {pooling: measure_filter_means(images, pooling) for pooling in POOLINGS}
    torch.save({"images": [name for name, _ in images], "means": means}, FILTER_MEANS_PATH)
    dead = sum(int((m <= 0).sum()) for m in means["max"].values())
    print(f"wrote {FILTER_MEANS_PATH} from {len(images)} images; {dead} filters never active")


if __name__ == "__main__":
    main()
