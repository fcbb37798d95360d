"""Matplotlib helpers: images side by side with titles, loss curves. They draw on figures
they create and return them; they never call ``plt.show()`` (the notebook displays them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor

from .images import to_display
from .optimize import OptimizeResult


def show_images(
    images: Sequence[Tensor],
    titles: Sequence[str] | None = None,
    *,
    ncols: int | None = None,
    width: float = 3.0,
    suptitle: str | None = None,
):
    """A grid of images (``(1, 3, H, W)`` tensors in [0, 1]) with optional titles; returns the figure."""
    import matplotlib.pyplot as plt

    if not images:
        raise ValueError("show_images needs at least one image")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    ncols = ncols or len(images)
    nrows = -(-len(images) // ncols)
    h, w = images[0].shape[-2:]
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, width * nrows * h / w + 0.4 * nrows),
                             squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(to_display(images[i]), interpolation="lanczos" if max(h, w) > 256 else "nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=10)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def show_grid(
    images: Sequence[Sequence[Tensor]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    width: float = 2.2,
    suptitle: str | None = None,
):
    """A rows x columns grid (e.g. style layer sets x alpha/beta ratios, the paper's Fig. 4)."""
    import matplotlib.pyplot as plt

    nrows, ncols = len(images), len(images[0])
    if len(row_labels) != nrows or len(col_labels) != ncols:
        raise ValueError("row/column labels do not match the grid")
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols + 1.0, width * nrows),
                             squeeze=False, layout="constrained")
    for r, row in enumerate(images):
        for c, image in enumerate(row):
            ax = axes[r][c]
            ax.imshow(to_display(image))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(col_labels[c], fontsize=10)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_losses(
    results: Mapping[str, OptimizeResult],
    *,
    term: str | None = None,
    x: str = "step",
    ax=None,
    logy: bool = True,
):
    """Loss curves (one per labelled result) against ``step``, ``evaluations`` or ``seconds``."""
    import matplotlib.pyplot as plt

    if x not in ("step", "evaluations", "seconds"):
        raise ValueError(f"unknown x {x!r}; expected one of step, evaluations, seconds")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    for label, result in results.items():
        attr = "elapsed" if x == "seconds" else x
        xs = [getattr(h, attr) for h in result.history]
        ax.plot(xs, result.losses(term), label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(f"{term} loss" if term else "total loss")
    ax.legend(fontsize=8)
    return ax.figure
