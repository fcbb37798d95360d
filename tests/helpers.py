"""What several test modules share: the repository root, a seeded random tensor, a small config,
unreadable image files and a loader for the maintenance scripts.

Test modules import it as ``from helpers import ...``, as they import ``browser``: pytest puts
``tests/`` on ``sys.path`` (``tests/engine/`` reaches it through ``tests/conftest.py``).
Fixtures are in ``tests/conftest.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from PIL import Image

from nst_utils.config import PAPER

#: The checkout the tests run in.
ROOT = Path(__file__).resolve().parents[1]

#: The cheapest run for plumbing tests: the seeded random-weight network, the smallest size, a few
#: steps, one content and two style layers, all reached by the ``small_random_extractor`` fixture
#: (truncated after relu2_1). Tests change what they vary with ``SMALL.replace(...)``.
SMALL = PAPER.replace(network_weights="random", device="cpu", size=32, steps=4, content_layers=("relu2_1",),
                      style_layers=("relu1_1", "relu2_1"))


def rand(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform values in ``[0, 1)`` from a seeded CPU generator: ``rand(1, 3, H, W)`` is an image."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def text_file(folder: Path) -> Path:
    """``folder/notes.png``: text under an image's extension (the content decides, not the name)."""
    path = folder / "notes.png"
    path.write_text("not pixels\n" * 10)
    return path


def truncated_jpeg(folder: Path) -> Path:
    """``folder/cut.jpg``: the first 2 KiB of a noise JPEG, a file cut short."""
    rng = np.random.default_rng(0)
    full = folder / "full.jpg"
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(full, quality=90)
    cut = folder / "cut.jpg"
    cut.write_bytes(full.read_bytes()[:2048])
    return cut


def load_script(name: str) -> ModuleType:
    """``scripts/name.py`` imported as a module (the scripts are not a package; ``main`` does not run)."""
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
