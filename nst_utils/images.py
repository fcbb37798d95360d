"""Images in and out: one public tensor convention, float32 ``(1, 3, H, W)`` RGB in ``[0, 1]``.

Loading accepts a path or a ``PIL.Image``: EXIF orientation is applied, and grayscale,
palette, RGBA/LA (composited on white), CMYK and 16-bit images are converted to 8-bit-equivalent
RGB in ``[0, 1]``. Errors are :class:`ImageError` with one line naming the file and the problem.

Saving writes PNG atomically (temporary file, then rename) and stores the run's parameters as
JSON in the PNG's text metadata, so a result can be reproduced from the file alone.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError
from torch import Tensor

from .config import MAX_SIZE, MIN_SIZE

#: PNG text key under which :func:`save_image` stores the run's parameters.
METADATA_KEY = "nst_utils"
#: Decompression-bomb guard: images above this many pixels are refused (PIL's default).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485

ImageSource = str | os.PathLike | Image.Image


class ImageError(ValueError):
    """A user-supplied image cannot be used; the message names the file and the problem."""


def _describe(source: ImageSource) -> str:
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.width}x{source.height}>"
    return str(source)


def _open(path: Path) -> Image.Image:
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    return _read(path, path)


def decode_image(data: bytes, name: str = "upload") -> Image.Image:
    """An image from encoded bytes (an upload), with the same checks as a file; ``name`` is
    what error messages call it."""
    if not data:
        raise ImageError(f"{name}: empty file")
    return _read(io.BytesIO(data), name)


def _read(path: Path | io.BytesIO, name: Path | str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # PIL only warns between 1x and 2x its pixel limit; we refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            try:
                if image.width * image.height > MAX_PIXELS:
                    raise ImageError(
                        f"{name}: {image.width}x{image.height} pixels exceeds the limit of {MAX_PIXELS} "
                        "(possible decompression bomb)"
                    )
                image.load()
            except BaseException:
                image.close()  # a refused or broken image must not keep its file open
                raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(
            f"{name}: too many pixels, refused as a possible decompression bomb ({err})") from err
    except UnidentifiedImageError as err:
        raise ImageError(f"{name}: not an image PIL can read") from err
    except OSError as err:  # truncated or corrupt data
        raise ImageError(f"{name}: corrupt or truncated image ({err})") from err
    return image


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
    image = source if isinstance(source, Image.Image) else _open(Path(source))
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


def check_output_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path if a PNG can be written there, else :class:`ImageError` saying why.

    Called by :func:`save_image` and, before a long run starts, by the command line.
    """
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise ImageError(f"{out}: output must be a .png file")
    if out.is_dir():
        raise ImageError(f"{out}: is a directory")
    if not out.parent.is_dir():  # Path("x.png").parent is Path("."), never empty
        raise ImageError(f"{out}: folder {out.parent} does not exist")
    return out


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
