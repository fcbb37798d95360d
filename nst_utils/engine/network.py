"""The network a run uses: the fastest :class:`~nst_utils.features.VGG19Features` for the machine,
and the checks that an extractor handed in agrees with the settings."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..config import TransferConfig
from ..features import VGG19Features
from ..layers import deepest
from .hardware import Machine, plan

__all__ = ["build_extractor", "check_extractor", "machine_of"]


def build_extractor(config: TransferConfig, layers: Iterable[str] | None = None,
                    machine: Machine | None = None) -> VGG19Features:
    """The fastest :class:`VGG19Features` for ``config`` on this machine (``machine``, planned
    from the config when not given), truncated after the deepest of ``layers`` (default: the
    config's content and style layers)."""
    machine = machine or plan(config)
    layers = list(layers) if layers is not None else [*config.content_layers, *config.style_layers]
    extractor = VGG19Features(
        config.network_weights, config.pooling, last_layer=deepest(layers), seed=config.seed,
        padding=config.padding, channels_last=machine.device.type == "cpu",
        autocast_dtype=machine.autocast_dtype,
    )
    if machine.conv_algorithm == "winograd":
        from .winograd import use_winograd_convolutions

        use_winograd_convolutions(extractor)
    return extractor.to(machine.device)


def machine_of(extractor: VGG19Features) -> Machine:
    """What an existing extractor runs on: its device, precision and convolution algorithm."""
    device = next(extractor.buffers()).device
    precision = "bfloat16" if extractor.autocast_dtype == torch.bfloat16 else "float32"
    return Machine(device, precision, extractor.conv_algorithm)


def check_extractor(extractor: VGG19Features, config: TransferConfig, layers: Iterable[str]) -> Machine:
    """The extractor's :class:`Machine`, or ``ValueError`` naming the first setting in which it
    disagrees with ``config`` (an ``"auto"`` setting agrees with any choice)."""
    machine = machine_of(extractor)
    found = {"network_weights": extractor.weights, "pooling": extractor.pooling, "padding": extractor.padding,
             "device": machine.device.type,
             "precision": machine.precision, "conv_algorithm": machine.conv_algorithm}
    if config.network_weights == "random":
        found["seed"] = extractor.seed
    for name, value in found.items():
        wanted = getattr(config, name)
        if name == "conv_algorithm" and value == "direct" and not _has_winograd_layers(extractor):
            continue  # nothing to choose: no layer of this network is one Winograd would compute
        if wanted != "auto" and str(wanted) != str(value):
            raise ValueError(
                f"the extractor was built with {name} {value!r} but the config asks for {wanted!r}; "
                f"build it with make_extractor(config) or set {name}={value!r} in the config"
            )
    last = deepest(list(layers))
    if last not in extractor.layer_names:
        raise ValueError(f"the extractor stops at {extractor.layer_names[-1]!r}, before the layer {last!r}")
    return machine


def _has_winograd_layers(extractor: VGG19Features) -> bool:
    from .winograd import use_winograd

    return any(use_winograd(m) for m in extractor.body)
