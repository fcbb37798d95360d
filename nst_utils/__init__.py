"""nst_utils: the companion package of a notebook series on Gatys, Ecker & Bethge,
"Image Style Transfer Using Convolutional Neural Networks" (CVPR 2016).

One tensor convention everywhere: float32 ``(1, 3, H, W)`` RGB in ``[0, 1]``.

The teaching core: :mod:`.config` (every default), :mod:`.layers` (the paper's layer names),
:mod:`.images`, :mod:`.features` (VGG-19 by layer name), :mod:`.losses` (pure functions),
:mod:`.optimize` (one small loop), :mod:`.objective` (targets and the objective), :mod:`.loop`
(the run, level by level), :mod:`.recipes` (the paper's three experiments), :mod:`.callbacks`,
:mod:`.plotting`; the controls of Gatys et al. (2017), :mod:`.color` and :mod:`.masks`. The user
interfaces: :mod:`.widgets` (with :mod:`.live`, settings that change during a run), :mod:`.cli`.
The engine room, :mod:`.engine`, makes runs fast on particular hardware behind one seam.

Importing the package is cheap: each public name's submodule (and with it PyTorch, seconds to
load) is imported the first time the name is used, so ``nst --help`` answers at once while
``nst.transfer(...)`` works as if everything had been imported here.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

from .version import __version__  # noqa: F401 (public: the package version)

#: The public names, by the submodule that defines them.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "config": ("DEFAULT", "FIG1_CONTENT_LAYERS", "FIG1_STYLE_LAYER_SETS", "PAPER", "PAPER_CONTENT_LAYERS",
               "PAPER_STYLE_LAYERS", "RATIO_RANGE", "TransferConfig"),
    "device": ("resolve_device",),
    "features": ("VGG19Features",),
    "images": ("ImageError", "load_image", "read_metadata", "resize", "save_image", "to_display", "to_pil"),
    "layers": ("LAYER_CHANNELS", "LAYER_INDEX", "LAYERS", "check_layers"),
    "losses": ("content_loss", "content_loss_paper", "gram_matrix", "style_layer_loss", "style_loss",
               "tv_loss"),
    "loop": ("RunResult", "run"),
    "objective": ("MatchingObjective", "content_targets", "initial_image", "style_targets"),
    "optimize": ("OptimizeResult", "StepInfo", "optimize"),
    "recipes": ("make_extractor", "reconstruct_content", "synthesize_texture", "transfer"),
}
#: Each public name -> the submodule that defines it.
_SUBMODULE_OF: dict[str, str] = {name: module for module, names in _EXPORTS.items() for name in names}
#: Submodules reachable as attributes (``nst.losses``, ``nst.widgets``), also loaded on first use.
_SUBMODULES: tuple[str, ...] = (
    "callbacks", "checks", "cli", "color", "config", "conventions", "device", "engine", "features",
    "image_files", "images", "layers", "lbfgsb", "live", "loop", "losses", "masks", "normalization",
    "objective", "optimize", "plotting", "recipes", "samples", "version", "widgets",
)

__all__ = list(_SUBMODULE_OF)

# What editors and type checkers read for "go to definition"; a test checks it equals _EXPORTS.
if TYPE_CHECKING:
    from .config import (  # noqa: F401
        DEFAULT,
        FIG1_CONTENT_LAYERS,
        FIG1_STYLE_LAYER_SETS,
        PAPER,
        PAPER_CONTENT_LAYERS,
        PAPER_STYLE_LAYERS,
        RATIO_RANGE,
        TransferConfig,
    )
    from .device import resolve_device  # noqa: F401
    from .features import VGG19Features  # noqa: F401
    from .images import (  # noqa: F401
        ImageError,
        load_image,
        read_metadata,
        resize,
        save_image,
        to_display,
        to_pil,
    )
    from .layers import LAYER_CHANNELS, LAYER_INDEX, LAYERS, check_layers  # noqa: F401
    from .loop import RunResult, run  # noqa: F401
    from .losses import (  # noqa: F401
        content_loss,
        content_loss_paper,
        gram_matrix,
        style_layer_loss,
        style_loss,
        tv_loss,
    )
    from .objective import MatchingObjective, content_targets, initial_image, style_targets  # noqa: F401
    from .optimize import OptimizeResult, StepInfo, optimize  # noqa: F401
    from .recipes import make_extractor, reconstruct_content, synthesize_texture, transfer  # noqa: F401


def __getattr__(name: str) -> object:
    """PEP 562: called for a name not yet in the package; imports the submodule that has it."""
    if name in _SUBMODULE_OF:
        value = getattr(importlib.import_module(f".{_SUBMODULE_OF[name]}", __name__), name)
        globals()[name] = value  # from now on an ordinary attribute
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The loaded names and the lazy ones, for tab completion."""
    return sorted({*globals(), *__all__, *_SUBMODULES})


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: object) -> None:
        # Loading a submodule makes the import system set the package attribute of its name to it.
        # ``optimize`` is both a submodule and its loop function: the package's public name is the
        # function (as when everything was imported eagerly), so the submodule must not replace it.
        if name in _SUBMODULE_OF and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
