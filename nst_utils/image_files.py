"""Image files read and checked with PIL alone: the part of :mod:`.images` that needs no torch.

It lives on its own so that the command line can refuse a missing or broken file at once,
before PyTorch loads (seconds); :mod:`.images` builds its tensors on these functions and
re-exports their names. Errors are :class:`ImageError` with one line naming the file and the
problem.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

#: Decompression-bomb guard: images above this many pixels are refused (PIL's default).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485

ImageSource = str | os.PathLike | Image.Image


class ImageError(ValueError):
    """A user-supplied image cannot be used; the message names the file and the problem."""


def open_image(path: Path) -> Image.Image:
    """The image in the file at ``path``, decoded; :class:`ImageError` says why it cannot be."""
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    if not os.access(path, os.R_OK):  # else PIL's error would call the file corrupt
        raise ImageError(f"{path}: not readable (permission denied)")
    return _read(path, path)


def check_image_file(path: str | os.PathLike) -> None:
    """Raise :class:`ImageError` unless ``path`` is an image file PIL can read in full."""
    open_image(Path(path)).close()


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
            f"{name}: too many pixels, refused as a possible decompression bomb ({err})"
        ) from err
    except UnidentifiedImageError as err:
        raise ImageError(f"{name}: not an image PIL can read") from err
    except OSError as err:  # truncated or corrupt data
        raise ImageError(f"{name}: corrupt or truncated image ({err})") from err
    return image


def check_output_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path if a PNG can be written there, else :class:`ImageError` saying why.

    Called by :func:`nst_utils.images.save_image` and, before a long run starts, by the command line.
    """
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise ImageError(f"{out}: output must be a .png file")
    if out.is_dir():
        raise ImageError(f"{out}: is a directory")
    if not out.parent.is_dir():  # Path("x.png").parent is Path("."), never empty
        raise ImageError(f"{out}: folder {out.parent} does not exist")
    return out
