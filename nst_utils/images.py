"""Images in and out: one public tensor convention, float32 ``(1, 3, H, W)`` RGB in ``[0, 1]``.

Loading accepts a path or a ``PIL.Image``: EXIF orientation is applied, and grayscale,
palette, RGBA/LA (composited on white), CMYK and 16-bit images are converted to 8-bit-equivalent
RGB in ``[0, 1]``. Errors are :class:`ImageError` with one line naming the file and the problem.

Saving writes PNG atomically (temporary file, then rename) and stores the run's parameters as
JSON in the PNG's text metadata, so a result can be reproduced from the file alone.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, PngImagePlugin
from torch import Tensor

from .config import MAX_SIZE, MIN_SIZE

# Reading and checking files needs PIL alone; it lives apart so the command line can use it
# without loading torch. Its names are part of this module's API too (hence the noqa).
from .image_files import (  # noqa: F401
    MAX_PIXELS,
    ImageError,
    ImageSource,
    check_output_path,
    decode_image,
    open_image,
)

#: PNG text key under which :func:`save_image` stores the run's parameters.
METADATA_KEY = "nst_utils"


def _describe(source: ImageSource) -> str:
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.width}x{source.height}>"
    return str(source)

def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """Any PIL mode to a float32 ``H x W x 3`` array in ``[0, 1]``."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(arr / top, 0.0, 1.0).astype(np.float32)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        gray = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "RGBa":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    image = image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, RGBA composited
    return np.asarray(image, dtype=np.float32) / 255.0


def target_size(width: int, height: int, size: int | tuple[int, int] | None) -> tuple[int, int]:
    """``(height, width)`` after resizing: ``size`` is the longest side, an exact ``(H, W)``, or None."""
    if size is None:
        return height, width
    if isinstance(size, tuple):
        return int(size[0]), int(size[1])
    scale = size / max(width, height)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize(image: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Resize a ``(B, 3, H, W)`` tensor to a longest side or an exact ``(H, W)``; antialiased."""
    h, w = target_size(image.shape[-1], image.shape[-2], size)
    if (h, w) == tuple(image.shape[-2:]):
        return image
    return F.interpolate(image, size=(h, w), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def load_image(
    source: ImageSource,
    size: int | tuple[int, int] | None = None,
    *,
    device: torch.device | str | None = None,
    name: str | None = None,
) -> Tensor:
    """Load ``source`` (path, sample name or PIL image) as float32 ``(1, 3, H, W)`` in ``[0, 1]``.

    ``size``: the longest side in pixels (aspect kept), an exact ``(height, width)``, or None
    for the original size. Raises :class:`ImageError` naming the file (or ``name``) and the problem.
    """
    from .samples import resolve_image_source

    resolved = resolve_image_source(source)
    # A sample is named as the user wrote it ("hopper"), not as the PIL image it resolves to.
    name = name or (str(source) if resolved is not source else _describe(source))
    source = resolved
    image = source if isinstance(source, Image.Image) else open_image(Path(source))
    image = ImageOps.exif_transpose(image) or image
    if min(image.size) < MIN_SIZE:
        raise ImageError(
            f"{name}: {image.width}x{image.height} pixels is too small; "
            f"the network needs at least {MIN_SIZE} pixels on each side"
        )
    tensor = torch.from_numpy(_to_rgb_array(image).copy()).permute(2, 0, 1).unsqueeze(0)
    if size is not None:
        check_size(size, name)
        tensor = resize(tensor, size)
        if min(tensor.shape[-2:]) < MIN_SIZE:
            h, w = tensor.shape[-2:]
            raise ImageError(
                f"{name}: resized to {w}x{h} pixels, which is too small; "
                f"the network needs at least {MIN_SIZE} pixels on each side"
            )
    return tensor.contiguous().to(device=device)


def check_size(size: int | tuple[int, int], name: str = "size") -> None:
    sides = size if isinstance(size, tuple) else (size,)
    for side in sides:
        if not MIN_SIZE <= int(side) <= MAX_SIZE:
            raise ImageError(f"{name}: size {side} is out of range; expected {MIN_SIZE}..{MAX_SIZE} pixels")


def to_display(image: Tensor) -> np.ndarray:
    """Denormalise/clip for display: ``(1, 3, H, W)`` or ``(3, H, W)`` -> float ``H x W x 3`` in [0, 1]."""
    shape = tuple(image.shape)  # reported as given, before dropping the batch dimension
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected a single image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an image of shape (1, 3, H, W), got {shape}")
    return image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def to_uint8(image: Tensor) -> np.ndarray:
    """``H x W x 3`` uint8, rounded (not truncated) from ``[0, 1]``."""
    return np.round(to_display(image) * 255.0).astype(np.uint8)


def to_pil(image: Tensor) -> Image.Image:
    return Image.fromarray(to_uint8(image), mode="RGB")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


def save_image(image: Tensor, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``image`` as PNG atomically, with ``metadata`` as JSON under :data:`METADATA_KEY`.

    The file appears complete or not at all: the PNG is written to a temporary file in the
    same folder and renamed over ``path``.
    """
    out = check_output_path(path)
    folder = out.parent
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "nst_utils")
    if metadata:
        info.add_text(METADATA_KEY, json.dumps(_jsonable(metadata), sort_keys=True))
    pil = to_pil(image)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            pil.save(f, format="PNG", pnginfo=info)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The parameters :func:`save_image` stored in a PNG (empty if none)."""
    with Image.open(path) as im:
        text = im.text.get(METADATA_KEY) if hasattr(im, "text") else None
    return json.loads(text) if text else {}
