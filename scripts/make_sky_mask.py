"""Make the sky mask of the Neckarfront photograph, ``nst_utils/data/samples/tubingen_sky.png``.

``python scripts/make_sky_mask.py [OUTPUT]`` reads ``tubingen.jpg`` and writes an 8-bit greyscale
PNG of the same size (1024 x 768 px): 255 where the photograph shows sky, 0 for everything else
(the houses and the church tower, the trees, the river). Notebook 04 uses it as the sky's guide
for spatial control (Gatys et al., CVPR 2017), and its complement as the town's. OUTPUT defaults
to the shipped file. The mask is computed from the pixels, with fixed thresholds (numpy, PIL and
scipy's ``ndimage``, all dependencies of the package), so a re-run writes the same bytes; the
package ships the file and never runs this code.

The sky of this photograph is a clear winter sky: blue, and brighter than anything blue in the
town. The mask is its colour, cleaned up by connectivity rather than by smoothing, so that thin
parts of the town (the spire's finial, the chimneys) keep their pixels:

1. *seeds*: unmistakable sky pixels, much bluer than red and bright;
2. *sky-like* pixels: still blue, and at least ``BRIGHTNESS`` times as bright as the sky seeds
   around them, which admits the hazier sky near the horizon and sky seen between twigs but not
   the dark slate of the spire or the shaded, bluish stone of the tower;
3. only the sky-like pixels reachable from the seeds of the sky above the town count, which
   leaves out the blue river (the sky's reflection) and the blue clock faces;
4. town specks enclosed by sky (noise, antenna wires) become sky, and sky specks narrower than a
   few pixels or smaller than ``MIN_SKY_AREA`` become town.

The bare tree on the left is the one region without a true boundary: the mask labels its
trunk, its branches and its dense crown as town, and the sky between its outer twigs as sky.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "nst_utils" / "data" / "samples"
PHOTO = SAMPLES_DIR / "tubingen.jpg"
OUTPUT = SAMPLES_DIR / "tubingen_sky.png"

#: Seeds: blue exceeds red by this much (the clear sky: 60 to 110; a white facade: below 0) ...
SEED_BLUE_OVER_RED = 30
#: ... and blue is at least this bright (the clear sky: 165 to 200; the slate spire: below 150).
SEED_BLUE = 145
#: Sky-like pixels: blue exceeds red by this much (the haze at the horizon reaches down to 20) ...
BLUE_OVER_RED = 20
#: ... and blue is at least this fraction of the seeds' blue around it: the finial and the twigs
#: that darken a pixel by more than a fifth count as town.
BRIGHTNESS = 0.8
#: The side of the square over which "the seeds around" a pixel are averaged, in pixels: wide
#: enough to reach past a roof into the sky, narrow enough to follow the sky's vertical gradient.
WINDOW = 51
#: Sky seen through the tree is cut off from the open sky by branches: closing the seeds with a
#: disk of this radius bridges branches up to twice as thick, to decide which pixels belong to the
#: sky above the town (the river's reflection, far below, stays apart).
BRIDGE_RADIUS = 5
#: Radius of the disk that opens the sky: gaps of sky narrower than twice this are town.
OPEN_RADIUS = 1
#: Separate pieces of sky (between branches) smaller than this, in pixels, are town.
MIN_SKY_AREA = 50


def _disk(radius: int) -> np.ndarray:
    """A disk-shaped structuring element: round, unlike scipy's default cross or square."""
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius


def _close(mask: np.ndarray, radius: int) -> np.ndarray:
    """Morphological closing that treats the image's edge as no boundary: nothing grows in from
    outside (scipy's ``border_value=1`` would, in the dilation) and nothing is eaten away there."""
    grown = ndimage.binary_dilation(mask, _disk(radius), border_value=0)
    return ndimage.binary_erosion(grown, _disk(radius), border_value=1)


def _open(mask: np.ndarray, radius: int) -> np.ndarray:
    """Morphological opening, again with the image's edge as no boundary."""
    shrunk = ndimage.binary_erosion(mask, _disk(radius), border_value=1)
    return ndimage.binary_dilation(shrunk, _disk(radius), border_value=0)


def _touching_top(mask: np.ndarray) -> np.ndarray:
    """The connected parts of ``mask`` that touch the top row: the sky lies above the town."""
    labels, _ = ndimage.label(mask)
    return np.isin(labels, np.unique(labels[0][labels[0] > 0]))


def _containing(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The connected parts of ``mask`` that contain at least one of ``seeds``."""
    labels, _ = ndimage.label(mask)
    found = np.unique(labels[seeds & mask])
    return np.isin(labels, found[found > 0])


def _large(mask: np.ndarray, min_area: int) -> np.ndarray:
    """The connected parts of ``mask`` of at least ``min_area`` pixels."""
    labels, count = ndimage.label(mask)
    areas = ndimage.sum_labels(mask, labels, np.arange(1, count + 1))
    return np.concatenate([[False], areas >= min_area])[labels]


def _local_mean(values: np.ndarray, where: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean of ``values`` over the ``where`` pixels in a ``window``-wide square around each
    pixel (normalised convolution), and the fraction of such pixels there."""
    weight = ndimage.uniform_filter(where.astype(np.float64), window, mode="nearest")
    total = ndimage.uniform_filter(values * where, window, mode="nearest")
    return total / np.maximum(weight, 1e-6), weight


def sky_mask(photo: Image.Image) -> Image.Image:
    """The sky of ``photo`` as an 8-bit greyscale image of its size: 255 sky, 0 the rest."""
    rgb = np.asarray(photo.convert("RGB"), dtype=np.float64)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    seeds = (blue - red > SEED_BLUE_OVER_RED) & (blue > SEED_BLUE)
    # The sky darkens towards the zenith and whitens towards the horizon, so "bright enough" is
    # judged against the seeds nearby, not against one global level.
    seed_blue, seed_share = _local_mean(blue, seeds, WINDOW)
    skylike = (blue - red > BLUE_OVER_RED) & (blue > green) & (blue > BRIGHTNESS * seed_blue)
    skylike &= seed_share > 0.05  # deep in the town the local mean rests on a few stray seeds
    above_town = _touching_top(_close(seeds, BRIDGE_RADIUS))
    sky = _containing(skylike & above_town, seeds & above_town)
    sky = ndimage.binary_fill_holes(sky)  # town specks surrounded by sky
    sky = _open(sky, OPEN_RADIUS)
    sky = _large(sky, MIN_SKY_AREA)
    return Image.fromarray(np.where(sky, 255, 0).astype(np.uint8), "L")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1:
        raise SystemExit("usage: python scripts/make_sky_mask.py [OUTPUT]")
    output = Path(args[0]) if args else OUTPUT
    with Image.open(PHOTO) as photo:
        mask = sky_mask(photo)
    mask.save(output, optimize=True)
    sky = np.asarray(mask) > 127
    print(f"wrote {output} ({mask.width}x{mask.height}, {sky.mean():.1%} sky, "
          f"{output.stat().st_size / 2**10:.1f} KiB)")


if __name__ == "__main__":
    main()
