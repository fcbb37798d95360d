"""Matplotlib helpers: images side by side with titles, loss curves. They draw on figures
they create and return them; they never call ``plt.show()`` (the notebook displays them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor

from .images import to_display
from .optimize import OptimizeResult

#: The widest figure the helpers make, in pixels: a chapter's column in the rendered book and a
#: notebook on a code host are about this wide, so a wider figure would be shown shrunk.
MAX_WIDTH_PX = 720
_GAP_PX = 8  # between images
_TITLE_PX = 18  # per line of a title (10 pt at the default 100 dpi)


def _pixels(image: Tensor) -> tuple[int, int]:
    return int(image.shape[-2]), int(image.shape[-1])


def _pixel_figure(cells: list[list[Tensor]], titles: list[list[str]], scales: list[list[int]],
                  cell_hw: tuple[int, int], left_px: int = 0):
    """A figure that draws ``cells[r][c]`` at exactly ``scales[r][c]`` screen pixels per image pixel
    (nearest neighbour: every image pixel is a sharp block), each centred in a ``cell_hw`` box."""
    import matplotlib.pyplot as plt

    dpi = plt.rcParams["figure.dpi"]
    nrows, ncols = len(cells), max(len(row) for row in cells)
    title_px = [max((t.count("\n") + 1) * _TITLE_PX if t else 0 for t in row) for row in titles]
    cell_h, cell_w = cell_hw
    width = left_px + ncols * cell_w + (ncols - 1) * _GAP_PX
    height = sum(title_px) + nrows * cell_h + (nrows - 1) * _GAP_PX
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    axes = []
    top = height
    for r, row in enumerate(cells):
        top -= title_px[r]
        for c, image in enumerate(row):
            h, w = _pixels(image)
            k = scales[r][c]
            x0 = left_px + c * (cell_w + _GAP_PX) + (cell_w - w * k) // 2
            y0 = top - cell_h + (cell_h - h * k) // 2
            ax = fig.add_axes((x0 / width, y0 / height, w * k / width, h * k / height))
            ax.imshow(to_display(image), interpolation="nearest", aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if titles[r][c]:
                ax.set_title(titles[r][c], fontsize=10, pad=3)
            axes.append(ax)
        top -= cell_h + _GAP_PX
    return fig, axes


def show_images(
    images: Sequence[Tensor],
    titles: Sequence[str] | None = None,
    *,
    ncols: int | None = None,
    scale: int | None = None,
    suptitle: str | None = None,
):
    """Images (``(1, C, H, W)`` tensors in [0, 1]) side by side with optional titles, each shown at
    ``scale`` screen pixels per image pixel (an integer, so never smoothed: enlarged images show
    their pixels as sharp blocks). All images share the scale, so their sizes compare; by default
    the largest that fits :data:`MAX_WIDTH_PX`, and at least 1 (an image is never shown shrunk).
    ``ncols`` defaults to as many as fit that width. Returns the figure."""
    if not images:
        raise ValueError("show_images needs at least one image")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    if scale is not None and (not isinstance(scale, int) or scale < 1):
        raise ValueError(f"scale must be a whole number of at least 1, got {scale!r}")
    cell_h = max(_pixels(im)[0] for im in images)
    cell_w = max(_pixels(im)[1] for im in images)
    if ncols is None:
        ncols = max(1, min(len(images), (MAX_WIDTH_PX + _GAP_PX) // (cell_w + _GAP_PX)))
    if scale is None:
        scale = max(1, (MAX_WIDTH_PX - (ncols - 1) * _GAP_PX) // (ncols * cell_w))
    labels = list(titles) if titles is not None else [""] * len(images)
    cells = [list(images[i:i + ncols]) for i in range(0, len(images), ncols)]
    rows_titles = [labels[i:i + ncols] for i in range(0, len(images), ncols)]
    scales = [[scale] * len(row) for row in cells]
    fig, _ = _pixel_figure(cells, rows_titles, scales, (cell_h * scale, cell_w * scale))
    if suptitle:
        fig.suptitle(suptitle, y=1.0, va="bottom")
    return fig


def show_grid(
    images: Sequence[Sequence[Tensor]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    cell: int | None = None,
    suptitle: str | None = None,
):
    """A rows x columns grid (e.g. style layer sets x alpha/beta ratios, the paper's Fig. 4). Every
    cell is ``cell`` pixels on its longer side (default: the largest image's, enlarged by a whole
    factor while the grid fits :data:`MAX_WIDTH_PX`); each image is enlarged by the largest whole
    factor that fits its cell (nearest neighbour), so small maps show their pixels."""
    nrows = len(images)
    ncols = max(len(row) for row in images)
    if len(row_labels) != nrows or len(col_labels) != ncols:
        raise ValueError("row/column labels do not match the grid")
    label_px = 12 + 7 * max((len(label) for label in row_labels), default=0)
    largest = max(max(_pixels(im)) for row in images for im in row)
    if cell is None:
        room = (MAX_WIDTH_PX - label_px - (ncols - 1) * _GAP_PX) // ncols
        cell = largest * max(1, room // largest)
    scales = [[max(1, cell // max(_pixels(im))) for im in row] for row in images]
    box = (max(_pixels(im)[0] * k for row, ks in zip(images, scales) for im, k in zip(row, ks)),
           max(_pixels(im)[1] * k for row, ks in zip(images, scales) for im, k in zip(row, ks)))
    titles = [list(col_labels)] + [[""] * ncols for _ in range(nrows - 1)]
    cells = [list(row) for row in images]
    fig, axes = _pixel_figure(cells, titles, scales, box, left_px=label_px)
    for r, label in enumerate(row_labels):
        first = axes[sum(len(row) for row in cells[:r])]
        first.set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center", labelpad=6)
    if suptitle:
        fig.suptitle(suptitle, y=1.0, va="bottom")
    return fig


#: How :func:`plot_losses` draws its curves, in order: each later curve is thinner and dashed
#: differently, so a curve lying on top of another leaves the one below it visible.
CURVE_STYLES = (
    {"linestyle": "-", "linewidth": 3.0},
    {"linestyle": (0, (5, 2)), "linewidth": 1.8},
    {"linestyle": (0, (1, 1.5)), "linewidth": 1.4},
    {"linestyle": (0, (6, 2, 1, 2)), "linewidth": 1.0},
)


def plot_losses(
    results: Mapping[str, OptimizeResult],
    *,
    term: str | None = None,
    x: str = "step",
    ax=None,
    logy: bool = True,
    styles: Mapping[str, Mapping] | None = None,
):
    """Loss curves (one per labelled result) against ``step``, ``evaluations`` or ``seconds``.

    The curves cycle through :data:`CURVE_STYLES` (solid and wide first, then thinner dashes),
    so curves that coincide stay distinguishable; ``styles`` maps a label to matplotlib line
    options (``{"linestyle": ":", "marker": "o"}``) that replace its default ones."""
    import matplotlib.pyplot as plt

    if x not in ("step", "evaluations", "seconds"):
        raise ValueError(f"unknown x {x!r}; expected one of step, evaluations, seconds")
    unknown = sorted(set(styles or {}) - set(results))
    if unknown:
        raise ValueError(f"styles for unknown labels {unknown}; the results are {list(results)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    for k, (label, result) in enumerate(results.items()):
        attr = "elapsed" if x == "seconds" else x
        xs = [getattr(h, attr) for h in result.history]
        style = {**CURVE_STYLES[k % len(CURVE_STYLES)], **(styles or {}).get(label, {})}
        ax.plot(xs, result.losses(term), label=label, **style)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(f"{term} loss" if term else "total loss")
    ax.legend(fontsize=8)
    return ax.figure
