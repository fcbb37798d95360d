"""Regenerate ``nst_utils/data/vgg19_caffe_filter_means.pt``.

Gatys et al. use "a normalised version of the VGG network": weights rescaled so that the mean
activation of each filter over images and positions is one. Because ReLU and pooling commute
with a positive per-channel scale, that network's features are the original features times
``1 / mean`` per channel; this script measures those means (after ReLU, max pooling, as the
network was trained) over the natural photographs that ship in matplotlib's and
scikit-image's wheels. The paper used ImageNet, which cannot be downloaded here.

Run: ``python scripts/compute_filter_means.py`` (needs scikit-image, in the ``dev`` extra).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nst_utils.normalisation import FILTER_MEANS_PATH, measure_filter_means, reference_images


def main() -> None:
    images = reference_images()
    means = measure_filter_means(images)
    torch.save({"images": [name for name, _ in images], "means": means}, FILTER_MEANS_PATH)
    dead = sum(int((m <= 0).sum()) for m in means.values())
    print(f"wrote {FILTER_MEANS_PATH} from {len(images)} images; {dead} filters never active")


if __name__ == "__main__":
    main()
