"""Paint the synthetic style samples into ``nst_utils/data/samples/`` (run after changing them).

``python scripts/paint_samples.py`` writes ``mosaic.png``, ``swirls.jpg`` and ``composition.jpg``
at 1024 x 1024 px. They are painted deterministically (fixed seeds, numpy and PIL only), so a
re-run reproduces them; the package ships the files and never runs this code.

A style image for Gatys et al. needs texture at several scales: the Gram matrices of ``relu1_1``
see strokes a few pixels wide, those of ``relu5_1`` see shapes a hundred pixels wide. Each
painter therefore layers fine texture (glass grain, brush strokes, canvas grain) over large
shapes (a rose window, vortices and stars, a geometric composition).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

OUTPUT_DIR = Path(__file__).resolve().parents[1] / "nst_utils" / "data" / "samples"
#: The side of the shipped files, in pixels.
SIZE = 1024
#: The file each sample is written to. PNG keeps the painted pixels exactly, but the per-pixel
#: grain of the brush strokes and of the canvas makes those two PNGs nearly 2 MB each; as JPEG
#: at quality 95 without chroma subsampling they are under 1 MB and look the same.
FILES: dict[str, str] = {"mosaic": "mosaic.png", "swirls": "swirls.jpg", "composition": "composition.jpg"}
_SAVE_OPTIONS: dict[str, dict[str, object]] = {
    ".png": {"optimize": True},
    ".jpg": {"quality": 95, "subsampling": 0, "optimize": True},  # subsampling 0: 4:4:4 chroma
}
#: Smallest canvas worth painting: the Voronoi grid and the strokes need a few pixels per cell.
MIN_SIZE = 16

# ---------------------------------------------------------------------------------------------
# Small numpy helpers shared by the painters. Arrays are float32 in [0, 1], (H, W) or (H, W, 3).


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: uniform noise on a ``cells`` grid, smoothstep-interpolated."""
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    x = np.linspace(0.0, cells, size, endpoint=False, dtype=np.float32)
    i = x.astype(np.int64)
    f = x - i
    f = f * f * (3.0 - 2.0 * f)  # smoothstep hides the grid's diamond artefacts
    rows = grid[i] * (1.0 - f)[:, None] + grid[i + 1] * f[:, None]
    return rows[:, i] * (1.0 - f) + rows[:, i + 1] * f


def _fractal_noise(rng: np.random.Generator, size: int, cells: int, octaves: int) -> np.ndarray:
    """Sum of ``octaves`` value noises, each twice as fine and half as strong; range [0, 1]."""
    total = np.zeros((size, size), np.float32)
    for octave in range(octaves):
        total += _smooth_noise(rng, size, min(cells * 2**octave, size)) * 0.5**octave
    return total / (2.0 - 0.5 ** (octaves - 1))


def _gradient(stops: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Map ``t`` in [0, 1] through evenly spaced colour ``stops`` of shape (K, 3)."""
    pos = np.clip(t, 0.0, 1.0) * (len(stops) - 1)
    i = np.minimum(pos.astype(np.int64), len(stops) - 2)
    f = (pos - i)[..., None]
    return stops[i] * (1.0 - f) + stops[i + 1] * f


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _to_image(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8), "RGB")


# ---------------------------------------------------------------------------------------------
# "mosaic": a stained-glass rose window.

_GLASS = np.array(
    [
        (0.72, 0.05, 0.10), (0.05, 0.14, 0.58), (0.10, 0.36, 0.86), (0.04, 0.50, 0.22),
        (0.95, 0.62, 0.06), (0.98, 0.84, 0.22), (0.42, 0.09, 0.58), (0.04, 0.60, 0.66),
        (0.90, 0.34, 0.05), (0.76, 0.10, 0.46), (0.92, 0.90, 0.70), (0.55, 0.72, 0.10),
    ],
    np.float32,
)  # fmt: skip


def _voronoi(rng: np.random.Generator, size: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Jittered-grid Voronoi cells: (cell index, offset to own seed (H, W, 2), distance to edge).

    Seeds sit one per grid square (plus a ring outside the canvas), so a pixel's nearest seed is
    among the 3 x 3 squares around it: 9 candidates instead of all n^2.
    """
    cell = size / n
    g = np.arange(-1, n + 1)
    jitter = rng.uniform(-0.4, 0.4, (n + 2, n + 2, 2))
    seeds = ((np.stack(np.meshgrid(g, g, indexing="ij"), -1) + 0.5 + jitter) * cell).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    gy, gx = (yy // cell).astype(np.int64) + 1, (xx // cell).astype(np.int64) + 1
    cand = np.stack([(gy + dy) * (n + 2) + gx + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    flat = seeds.reshape(-1, 2)
    sy, sx = flat[cand, 0], flat[cand, 1]
    d2 = (yy - sy) ** 2 + (xx - sx) ** 2
    k = np.argmin(d2, axis=0)[None]
    own_y, own_x = np.take_along_axis(sy, k, 0), np.take_along_axis(sx, k, 0)
    # Distance to the bisector with each neighbour; the smallest is the distance to the cell edge.
    sep = np.sqrt((sy - own_y) ** 2 + (sx - own_x) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        to_edge = (d2 - np.take_along_axis(d2, k, 0)) / (2.0 * sep)
    to_edge = np.where(sep > 0, to_edge, np.inf).min(axis=0)
    offset = np.stack([yy - own_y[0], xx - own_x[0]], -1) / cell
    return np.take_along_axis(cand, k, 0)[0], offset, to_edge


def _rose_bars(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Distance to the window's iron bars (rings and spokes), and a region index per pixel."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dy, dx = yy - size / 2, xx - size / 2
    r = np.sqrt(dx**2 + dy**2) / size
    theta = np.arctan2(dy, dx)
    radii = np.array([0.09, 0.22, 0.36, 0.52], np.float32)
    ring_dist = np.abs(r[..., None] - radii).min(-1) * size
    spokes = 12
    spoke_angle = np.abs((theta * spokes / (2 * np.pi) + 0.5) % 1.0 - 0.5) * 2 * np.pi / spokes
    spoke_dist = np.where(r > radii[0], np.sin(spoke_angle) * r * size, np.inf)
    band = np.searchsorted(radii, r)  # ring band 0 (centre) ... 4 (corners)
    sector = np.floor(theta * spokes / (2 * np.pi)).astype(np.int64) % spokes
    sector = np.where(band > 0, sector, 0)  # the centre disc has no spokes
    # Alternate sectors share a colour scheme, as in a rose window's symmetric tracery.
    return np.minimum(ring_dist, spoke_dist), band * 2 + sector % 2


def _mosaic(size: int, seed: int) -> Image.Image:
    """Stained glass: Voronoi panes cut by a rose window's bars, shaded, grained, leaded."""
    rng = np.random.default_rng(seed)
    cell_idx, offset, to_edge = _voronoi(rng, size, n=15)
    bar_dist, region = _rose_bars(size)
    n_cells = cell_idx.max() + 1
    # A pane's colour depends on its cell and on the ring band / sector the bars cut it into,
    # with each ring band leaning towards its own part of the palette (large-scale structure).
    hue = rng.integers(0, len(_GLASS), n_cells)
    band_shift = rng.integers(0, len(_GLASS), region.max() + 1)
    colour = _GLASS[(hue[cell_idx] // 3 + band_shift[region]) % len(_GLASS)]
    colour = colour * rng.uniform(0.8, 1.15, (n_cells, 3)).astype(np.float32)[cell_idx]
    light = rng.normal(0.0, 1.0, (n_cells, 2)).astype(np.float32)[cell_idx]
    shade = 0.85 + 0.22 * (offset * light).sum(-1)  # light falls across each pane unevenly
    scale = size / 512
    bevel = 0.55 + 0.45 * _smoothstep(0.0, 14.0 * scale, to_edge)
    grain = 0.8 + 0.4 * _fractal_noise(rng, size, max(size // 48, 2), 4)
    rgb = colour * (shade * bevel * grain)[..., None]
    lead = np.minimum(to_edge - 1.6 * scale, bar_dist - 3.5 * scale)
    ink = np.clip(1.0 - lead / max(scale, 0.5), 0.0, 1.0)[..., None]  # 1-2 px anti-aliasing
    return _to_image(rgb * (1.0 - ink) + np.float32(0.06) * ink)


# ---------------------------------------------------------------------------------------------
# "swirls": a starry night of brush strokes.

_NIGHT = np.array(
    [
        (0.02, 0.05, 0.20), (0.06, 0.15, 0.45), (0.12, 0.30, 0.68), (0.30, 0.52, 0.80),
        (0.62, 0.76, 0.82), (0.94, 0.90, 0.62), (0.98, 0.80, 0.22), (0.92, 0.58, 0.08),
    ],
    np.float32,
)  # fmt: skip
#: Vortices (x, y, strength, radius) in units of the canvas side; the big one is the sky's swirl.
_VORTICES = ((0.48, 0.36, 1.6, 0.20), (0.80, 0.18, -0.9, 0.10), (0.16, 0.20, 0.8, 0.09),
             (0.70, 0.66, -1.0, 0.12), (0.26, 0.74, 0.9, 0.13))  # fmt: skip
#: Stars (x, y, radius); the last is the moon.
_STARS = ((0.16, 0.20, 0.05), (0.80, 0.18, 0.06), (0.55, 0.12, 0.03), (0.36, 0.55, 0.035),
          (0.90, 0.46, 0.04), (0.62, 0.86, 0.035), (0.06, 0.56, 0.03), (0.86, 0.82, 0.08))  # fmt: skip


def _flow_angle(rng: np.random.Generator, size: int) -> np.ndarray:
    """Direction of the strokes: wavy horizontal wind plus vortices plus low-frequency noise."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float32) / size
    fx = np.ones_like(u) * 0.6
    fy = 0.35 * np.sin(2 * np.pi * (1.5 * u + 0.8 * v))
    for cx, cy, strength, radius in _VORTICES:
        dx, dy = u - cx, v - cy
        fall = strength * np.exp(-(dx**2 + dy**2) / radius**2) / radius
        fx, fy = fx - dy * fall * 4, fy + dx * fall * 4
    wobble = 1.2 * (_fractal_noise(rng, size, 4, 3) - 0.5)
    return np.arctan2(fy, fx) + wobble


def _lic(noise: np.ndarray, angle: np.ndarray, length: int) -> np.ndarray:
    """Line-integral convolution: average ``noise`` along the flow, ``length`` px each way.

    Each pixel follows its streamline in unit steps (nearest-neighbour lookup, which is enough
    for brush strokes) with a triangular weight, so every stroke tapers at both ends.
    """
    size = noise.shape[0]
    cos, sin = np.cos(angle).ravel(), np.sin(angle).ravel()
    flat = noise.ravel()
    y0, x0 = (a.ravel() + 0.5 for a in np.mgrid[0:size, 0:size].astype(np.float32))
    total = flat.copy() * length
    weight = float(length)
    for direction in (1.0, -1.0):
        y, x = y0.copy(), x0.copy()
        for step in range(1, length):
            idx = np.clip(y, 0, size - 1).astype(np.int64) * size + np.clip(x, 0, size - 1).astype(np.int64)
            x += direction * cos[idx]
            y += direction * sin[idx]
            idx = np.clip(y, 0, size - 1).astype(np.int64) * size + np.clip(x, 0, size - 1).astype(np.int64)
            total += flat[idx] * (length - step)
            weight += length - step
    return (total / weight).reshape(size, size)


def _stars_glow(size: int) -> np.ndarray:
    """Brightness added by the stars: a bright core and concentric halo rings around each."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float32) / size
    glow = np.zeros((size, size), np.float32)
    for cx, cy, radius in _STARS:
        r = np.sqrt((u - cx) ** 2 + (v - cy) ** 2) / radius
        halo = 0.3 * (0.5 + 0.5 * np.cos(2.2 * np.pi * r)) * np.exp(-(((r - 1.4) / 1.2) ** 2))
        glow += 0.7 * np.exp(-(r**2)) + halo
    return glow


def _swirls(size: int, seed: int) -> Image.Image:
    """Van-Gogh-like night sky: noise smeared along a vortex flow into strokes, then coloured."""
    rng = np.random.default_rng(seed)
    scale = size / 512
    angle = _flow_angle(rng, size)
    # Dabs ~3 px wide; cubing the noise leaves sparse bright dabs, i.e. distinct strokes.
    dabs = _smooth_noise(rng, size, max(size // 3, 2)) ** 3
    strokes = _lic(dabs, angle, length=max(round(11 * scale), 2))
    strokes = (strokes - strokes.mean()) / (strokes.std() + 1e-6)
    sky = 0.32 + 0.22 * (_fractal_noise(rng, size, 3, 3) - 0.5)
    v = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None]
    t = sky - 0.12 * v + _stars_glow(size) + 0.12 * strokes
    rgb = _gradient(_NIGHT, t)
    # A low-frequency green/violet cast, so the blues are not one hue.
    cast = _fractal_noise(rng, size, 2, 2)[..., None] - 0.5
    rgb = rgb + 0.25 * cast * np.array([-0.2, 0.35, -0.3], np.float32)
    return _to_image(rgb * (0.92 + 0.08 * np.tanh(strokes))[..., None])


# ---------------------------------------------------------------------------------------------
# "composition": circles, triangles and bars on a mottled ground.

_BAUHAUS = [(200, 30, 35), (25, 60, 160), (240, 190, 30), (20, 20, 25), (230, 110, 25),
            (40, 130, 90), (120, 50, 140), (90, 170, 210), (245, 235, 210)]  # fmt: skip


def _pick(rng: np.random.Generator, alpha: int = 255) -> tuple[int, int, int, int]:
    return (*_BAUHAUS[int(rng.integers(len(_BAUHAUS)))], alpha)


def _draw_triangles(draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int) -> None:
    """Translucent triangles underneath everything; overlaps mix their colours."""
    for _ in range(5):
        centre = rng.uniform(0.15, 0.85, 2) * side
        radius = rng.uniform(0.12, 0.3) * side
        angles = rng.uniform(0, 2 * np.pi) + np.array([0.0, 2.1, 4.2]) + rng.uniform(-0.4, 0.4, 3)
        points = [tuple(centre + radius * np.array([np.cos(a), np.sin(a)])) for a in angles]
        draw.polygon(points, fill=_pick(rng, alpha=int(rng.integers(150, 230))))


def _draw_circles(draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int) -> None:
    """Discs made of concentric rings of contrasting colours, a few large and many small."""
    for k in range(12):
        cx, cy = rng.uniform(0.08, 0.92, 2) * side
        radius = side * (rng.uniform(0.08, 0.16) if k < 4 else rng.uniform(0.015, 0.05))
        rings = int(rng.integers(2, 5))
        for ring in range(rings):
            r = radius * (1 - ring / rings)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_pick(rng, alpha=235 if ring == 0 else 255))


def _draw_checkers(draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int) -> None:
    """Small checkerboards, a favourite motif."""
    for _ in range(3):
        x0, y0 = rng.uniform(0.05, 0.8, 2) * side
        step, colour = side * 0.022, _pick(rng)
        for i in range(6):
            for j in range(4):
                if (i + j) % 2 == 0:
                    box = (x0 + i * step, y0 + j * step, x0 + (i + 1) * step, y0 + (j + 1) * step)
                    draw.rectangle(box, fill=colour)


def _draw_lines(draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int) -> None:
    """Bold coloured bars and thin black strokes crossing the canvas."""
    for k in range(20):
        x0, y0 = rng.uniform(0, 1, 2) * side
        length, theta = rng.uniform(0.15, 0.6) * side, rng.uniform(0, np.pi)
        bold = k < 6
        width = int(side * (rng.uniform(0.01, 0.025) if bold else rng.uniform(0.002, 0.005))) + 1
        end = (x0 + length * np.cos(theta), y0 + length * np.sin(theta))
        draw.line([(x0, y0), end], fill=_pick(rng) if bold else (20, 20, 25, 255), width=width)


def _canvas_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Multiplicative texture: uneven paint (blotches), woven threads and pixel grain."""
    blotch = 0.86 + 0.24 * _fractal_noise(rng, size, 6, 4)
    threads = rng.random((2, size), dtype=np.float32)
    weave = 0.93 + 0.05 * (threads[0][:, None] + threads[1][None, :])
    grain = 0.95 + 0.1 * rng.random((size, size), dtype=np.float32)
    return blotch * weave * grain


def _composition(size: int, seed: int) -> Image.Image:
    """Kandinsky-like composition: PIL shapes drawn at 2x (anti-aliasing), then canvas texture."""
    rng = np.random.default_rng(seed)
    side = 2 * size
    canvas = Image.new("RGB", (side, side), (236, 224, 196))
    draw = ImageDraw.Draw(canvas, "RGBA")  # RGBA fills blend onto the RGB canvas
    for layer in (_draw_triangles, _draw_circles, _draw_checkers, _draw_lines):
        layer(draw, rng, side)
    rgb = np.asarray(canvas.resize((size, size), Image.Resampling.BOX), np.float32) / 255.0
    return _to_image(rgb * _canvas_texture(rng, size)[..., None])


_PAINTERS: dict[str, Callable[[int, int], Image.Image]] = {
    "mosaic": _mosaic,
    "swirls": _swirls,
    "composition": _composition,
}
#: One fixed seed per sample: the year of a work it recalls.
SEEDS: dict[str, int] = {"mosaic": 1916, "swirls": 1889, "composition": 1923}


def paint(name: str, size: int) -> Image.Image:
    """Paint sample ``name`` on a ``size`` x ``size`` canvas; the same arguments give the same pixels."""
    if name not in _PAINTERS:
        raise ValueError(f"unknown painted sample {name!r}; expected one of {', '.join(_PAINTERS)}")
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} pixels, got {size}")
    return _PAINTERS[name](size, SEEDS[name])


def main() -> None:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, file in FILES.items():
        path = OUTPUT_DIR / file
        paint(name, SIZE).save(path, **_SAVE_OPTIONS[path.suffix])
        print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MB)")


if __name__ == "__main__":
    main()
