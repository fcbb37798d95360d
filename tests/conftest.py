"""Shared pytest fixtures. Each fixture is a plainly named function; add new ones below. Shared
constants and plain functions (``ROOT``, ``rand``, ``SMALL``) are in ``tests/helpers.py``."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from helpers import SMALL
from matplotlib import cbook
from PIL import Image

from nst_utils.features import VGG19Features

PHOTO_SIZE = 64


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The engine room's caches (the timing calibration of ``engine.forecast``) go to a temporary
    folder for the session, never the user's ``~/.cache/nst_utils``; set in ``os.environ`` so the
    interpreters the tests start (the command line) inherit it."""
    old = os.environ.get("NST_CACHE_DIR")
    os.environ["NST_CACHE_DIR"] = str(tmp_path_factory.mktemp("nst_cache"))
    yield
    if old is None:
        os.environ.pop("NST_CACHE_DIR", None)
    else:
        os.environ["NST_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def caffe_vgg() -> VGG19Features:
    """The default extractor: Caffe VGG-19, max pooling, normalised (built once, ~1 s)."""
    return VGG19Features("caffe", "max")


@pytest.fixture(scope="session")
def random_vgg() -> VGG19Features:
    """Seeded random-weight VGG-19: no weight file, deterministic."""
    return VGG19Features("random", seed=0)


@pytest.fixture(scope="session")
def _photo_session() -> torch.Tensor:
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(path) as im:
        im = im.convert("RGB").resize((PHOTO_SIZE, PHOTO_SIZE), Image.Resampling.BICUBIC)
        arr = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0).contiguous()


@pytest.fixture
def photo(_photo_session: torch.Tensor) -> torch.Tensor:
    """Grace Hopper, float32 ``(1, 3, 64, 64)`` RGB in ``[0, 1]``; a fresh copy per test."""
    return _photo_session.clone()


@pytest.fixture(scope="session")
def paper_extractor() -> VGG19Features:
    """The paper's setting as the recipes build it: Caffe weights, average pooling, up to relu5_1."""
    from nst_utils.config import PAPER
    from nst_utils.recipes import make_extractor

    return make_extractor(PAPER.replace(device="cpu"))


@pytest.fixture(scope="session")
def small_random_extractor() -> VGG19Features:
    """Seeded random-weight VGG-19 truncated after relu2_1, the network of ``helpers.SMALL``: the
    cheapest extractor for plumbing tests."""
    from nst_utils.recipes import make_extractor

    return make_extractor(SMALL)
