"""The VGG-19 layer table under the paper's names.

Gatys et al. name layers ``conv{block}_{index}``, ``relu{block}_{index}`` and ``pool{block}``.
The table is derived by walking torchvision's VGG-19 ``features`` stack, so a name can never
drift from the index it stands for (the official PyTorch tutorial's ``conv_4``, for instance,
is really ``conv2_2``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

#: Number of convolutions in each of VGG-19's five blocks.
VGG19_BLOCKS: tuple[int, ...] = (2, 2, 4, 4, 4)


def _build_names() -> tuple[str, ...]:
    names: list[str] = []
    for block, n_convs in enumerate(VGG19_BLOCKS, start=1):
        for i in range(1, n_convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


#: All 37 layer names in network order: conv1_1, relu1_1, conv1_2, ..., pool5.
LAYERS: tuple[str, ...] = _build_names()
#: Position of each name in torchvision's ``vgg19().features``.
LAYER_INDEX: dict[str, int] = {name: i for i, name in enumerate(LAYERS)}
#: Number of channels (the paper's N_l) each layer outputs.
LAYER_CHANNELS: dict[str, int] = {}
_channels = (64, 128, 256, 512, 512)
for _name in LAYERS:
    LAYER_CHANNELS[_name] = _channels[int(_name[4]) - 1]
#: Spatial downsampling factor of each layer relative to the input (1, 2, 4, 8, 16, 32).
LAYER_STRIDE: dict[str, int] = {
    name: 2 ** (int(name[4]) - (0 if name.startswith("pool") else 1)) for name in LAYERS
}


def names_from_modules(features: nn.Sequential) -> tuple[str, ...]:
    """Name each module of a VGG ``features`` stack by walking it (used to check the table)."""
    # torch only here: the table above, and so config and the command line, must load without it.
    from torch import nn

    names: list[str] = []
    block, conv = 1, 0
    for module in features:
        if isinstance(module, nn.Conv2d):
            conv += 1
            names.append(f"conv{block}_{conv}")
        elif isinstance(module, nn.ReLU):
            names.append(f"relu{block}_{conv}")
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            raise TypeError(f"unexpected module {type(module).__name__} in a VGG features stack")
    return tuple(names)


def check_layers(layers: Iterable[str], what: str = "layer") -> tuple[str, ...]:
    """Return ``layers`` as a tuple, raising a clear error for an unknown or repeated name."""
    if isinstance(layers, str):
        layers = [part.strip() for part in layers.split(",") if part.strip()]
    out = tuple(layers)
    for name in out:
        if name not in LAYER_INDEX:
            raise ValueError(f"unknown {what} {name!r}; expected one of {', '.join(LAYERS)}")
    if len(set(out)) != len(out):
        raise ValueError(f"repeated {what} in {', '.join(out)}")
    return out


def deepest(layers: Sequence[str]) -> str:
    """The layer furthest into the network: the forward pass can stop there.

    A name may appear more than once (a layer used for both content and style).
    """
    if not layers:
        raise ValueError("no layers requested")
    return max(check_layers(dict.fromkeys(layers)), key=LAYER_INDEX.__getitem__)
