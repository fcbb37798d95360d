"""The paper's normalised VGG-19: every filter's mean activation over images is one.

Gatys et al. (2016, sec. 2): "We used the feature space provided by a normalized version of
the 16 convolutional and 5 pooling layers of the 19-layer VGG network. We normalized the
network by scaling the weights such that the mean activation of each convolutional filter
over images and positions is equal to one." Scaling filter ``i`` of layer ``l`` by ``s`` and
its input weights in layer ``l+1`` by ``1/s`` leaves the network's function unchanged and
multiplies that channel's conv, ReLU and pooling outputs by ``s`` (ReLU and pooling commute
with a positive scale). So the normalised network's features are the original features times
a per-channel constant. :class:`~nst_utils.features.VGG19Features` rescales the weights this
way, as the paper did (:func:`~nst_utils.features.fold_filter_scales`). The means were
measured once, offline, by ``scripts/compute_filter_means.py``.

The means are measured in the network as it runs, once with max pooling and once with average
pooling. Pooling comes before every layer above the first block, and a 2x2 average is smaller
than a 2x2 maximum, more so at each block: scales measured with max pooling leave an
average-pooling network's deeper filters far below one, and since E_l grows with the fourth power
of a layer's scale, its deep style layers all but vanish from the loss (the numbers: the README,
"The normalised network"). With the means of its own pooling, the paper's statement holds for
the network that computes the loss, whichever pooling that is.

Without it, the Caffe network's layers differ by orders of magnitude in their style loss, one
layer drowns the others, and the paper's α/β values mean nothing (measured: the README, "The
normalised network").
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .config import POOLINGS, check_choice
from .layers import LAYERS

FILTER_MEANS_PATH = Path(__file__).with_name("data") / "vgg19_caffe_filter_means.pt"
#: Departure from the paper, forced by a small reference set: nine photographs cannot estimate
#: the mean of a filter that rarely fires (the paper averaged over ImageNet). Such a filter gets a
#: huge scale, and the fourth power in E_l lets it swamp its layer, as conv1_1's filter 12 (a
#: saturated-blue detector) does on a blue painting (the numbers: the README, "The normalised
#: network"). Flooring each mean at this fraction of its layer's median caps every scale at
#: 1 / MIN_MEAN_FRACTION times the layer's median scale.
MIN_MEAN_FRACTION = 0.2


def load_filter_scales(pooling: str = "max") -> dict[str, Tensor]:
    """Per-channel scale ``1 / mean`` for every layer name (conv, relu and pool taps), from the
    means measured with ``pooling`` ("max" or "avg").

    A pool tap takes the scale of the ReLU before it. A filter that barely fired on the
    reference images has its mean floored at ``MIN_MEAN_FRACTION`` of its layer's median.
    """
    check_choice(pooling, POOLINGS, "pooling")
    means = torch.load(FILTER_MEANS_PATH, map_location="cpu", weights_only=True)["means"][pooling]
    scales: dict[str, Tensor] = {}
    last: Tensor | None = None
    for name in LAYERS:
        if name.startswith("pool"):  # the table starts with conv1_1, so `last` is set
            scales[name] = last
            continue
        conv = "conv" + name[4:]
        mean = means[conv]
        last = 1.0 / mean.clamp_min(MIN_MEAN_FRACTION * float(mean.median()))
        scales[name] = last
    return scales
