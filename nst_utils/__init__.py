"""nst_utils: the companion package of a notebook series on Gatys, Ecker & Bethge,
"Image Style Transfer Using Convolutional Neural Networks" (CVPR 2016).

One tensor convention everywhere: float32 ``(1, 3, H, W)`` RGB in ``[0, 1]``.

The teaching core: :mod:`.config` (every default), :mod:`.layers` (the paper's layer names),
:mod:`.images`, :mod:`.features` (VGG-19 by layer name), :mod:`.losses` (pure functions),
:mod:`.optimize` (one small loop), :mod:`.recipes` (the three experiments and the run loop),
:mod:`.callbacks`, :mod:`.plotting`; the controls of Gatys et al. (2017), :mod:`.color` and
:mod:`.guides`. The user interfaces: :mod:`.widgets`, :mod:`.cli`.
The engine room, :mod:`.engine`, makes runs fast on particular hardware behind one seam.
"""

from .config import (
    FIG1_CONTENT_LAYERS,
    FIG1_STYLE_LAYER_SETS,
    PAPER,
    PAPER_CONTENT_LAYERS,
    PAPER_STYLE_LAYERS,
    RATIO_RANGE,
    TransferConfig,
    run_settings,
)
from .device import resolve_device
from .features import VGG19Features
from .images import ImageError, load_image, read_metadata, resize, save_image, to_display, to_pil
from .layers import LAYER_CHANNELS, LAYER_INDEX, LAYERS, check_layers
from .loop import RunResult, run
from .losses import content_loss, content_loss_paper, gram_matrix, style_layer_loss, style_loss, tv_loss
from .objective import MatchingObjective, content_targets, initial_image, style_targets
from .optimize import OptimizeResult, StepInfo, optimize
from .recipes import make_extractor, reconstruct_content, synthesize_texture, transfer
from .version import __version__  # noqa: F401 (the package's version, read by tools)

#: Submodules loaded on first use (``nst.widgets`` needs ipywidgets, which only the notebooks need).
_LAZY_SUBMODULES = ("callbacks", "cli", "color", "guides", "normalization", "plotting", "samples", "widgets")


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FIG1_CONTENT_LAYERS", "FIG1_STYLE_LAYER_SETS", "LAYERS", "LAYER_CHANNELS", "LAYER_INDEX", "PAPER",
    "PAPER_CONTENT_LAYERS", "PAPER_STYLE_LAYERS", "RATIO_RANGE", "ImageError", "MatchingObjective",
    "OptimizeResult", "RunResult", "StepInfo", "TransferConfig", "VGG19Features", "check_layers",
    "content_loss", "content_loss_paper", "content_targets", "gram_matrix", "initial_image", "load_image",
    "make_extractor", "optimize", "read_metadata", "reconstruct_content", "resize", "resolve_device", "run",
    "run_settings", "save_image", "style_layer_loss", "style_loss", "style_targets", "synthesize_texture",
    "to_display", "to_pil", "transfer", "tv_loss",
]
