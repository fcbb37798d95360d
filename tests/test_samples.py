"""Tests for nst_utils.samples (the offline sample images) and scripts/paint_samples.py."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from helpers import load_script
from PIL import Image

from nst_utils.samples import (
    CONTENT_SAMPLES,
    SAMPLE_PREFIX,
    SAMPLES,
    STYLE_SAMPLES,
    resolve_image_source,
    sample_image,
    sample_path,
)

HOPPER_SIZE = (512, 600)  # matplotlib's photo; not stored with ours, so not in CREDITS.md


def _credited_sizes() -> dict[str, tuple[str, tuple[int, int]]]:
    """CREDITS.md's table as {sample name: (file name, (width, height))}."""
    text = (sample_path("mosaic").parent / "CREDITS.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \((\d+)x(\d+)\) \| `([a-z_]+)` \|", text, flags=re.MULTILINE)
    return {name: (file, (int(w), int(h))) for file, w, h, name in rows}


@pytest.fixture(scope="module")
def painter() -> ModuleType:
    """``scripts/paint_samples.py`` imported as a module (its ``main`` does not run)."""
    return load_script("paint_samples")


# --- smoke / shape -------------------------------------------------------------------------------


def test_every_sample_is_content_or_style() -> None:
    assert set(CONTENT_SAMPLES) | set(STYLE_SAMPLES) == set(SAMPLES)
    assert not set(CONTENT_SAMPLES) & set(STYLE_SAMPLES)


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_loads_at_its_documented_size(name: str) -> None:
    image = sample_image(name)
    assert isinstance(image, Image.Image)
    assert image.mode == "RGB"
    assert image.size == (HOPPER_SIZE if name == "hopper" else _credited_sizes()[name][1])


def test_credits_list_every_shipped_file_under_its_sample_name() -> None:
    credited = _credited_sizes()
    shipped = {p.name for p in sample_path("mosaic").parent.iterdir() if p.name != "CREDITS.md"}
    assert {file for file, _ in credited.values()} == shipped
    assert set(credited) == set(SAMPLES) - {"hopper"}
    for name, (file, _) in credited.items():
        assert sample_path(name).name == file


@pytest.mark.parametrize("name", SAMPLES)
def test_description_names_a_licence(name: str) -> None:
    assert re.search(r"public domain|CC BY 3\.0|CC0", SAMPLES[name]), SAMPLES[name]


def test_cc_by_photo_credits_its_author() -> None:
    assert "CC BY 3.0" in SAMPLES["tubingen"]
    assert "Andreas Praefcke" in SAMPLES["tubingen"]


@pytest.mark.parametrize("name", STYLE_SAMPLES)
def test_style_is_textured_not_flat(name: str) -> None:
    pixels = np.asarray(sample_image(name, 256), dtype=np.float64) / 255.0
    assert (pixels.reshape(-1, 3).std(axis=0) > 0.05).all()
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 2000
    # Fine texture: neighbouring pixels differ noticeably somewhere, not only at a few edges.
    assert np.abs(np.diff(pixels, axis=1)).mean() > 0.01


def test_returns_a_copy() -> None:
    first = sample_image("mosaic", 64)
    before = first.tobytes()
    first.paste((0, 0, 0), (0, 0, 64, 64))
    assert sample_image("mosaic", 64).tobytes() == before


# --- the size argument ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size", "expected"),
    [
        ("tubingen", 256, (256, 192)),  # landscape 1024 x 768
        ("scream", 256, (201, 256)),  # portrait 1200 x 1528: 256 * 1200 / 1528 = 201.0
        ("mosaic", 100, (100, 100)),  # square
        ("hopper", 60, (51, 60)),  # 512 x 600, as nst_utils.images.load_image rounds it
        ("shipwreck", 1920, (1920, 1324)),  # enlarged too: 960 x 662
    ],
)
def test_size_is_the_longest_side_aspect_kept(name: str, size: int, expected: tuple[int, int]) -> None:
    assert sample_image(name, size).size == expected  # positional, as existing callers pass it
    assert sample_image(name, size=size).size == expected


def test_resized_with_lanczos() -> None:
    with Image.open(sample_path("starry_night")) as stored:
        oracle = stored.convert("RGB").resize((128, 80), Image.Resampling.LANCZOS)
    assert sample_image("starry_night", 128).tobytes() == oracle.tobytes()


@pytest.mark.parametrize("size", [0, -512, 64.0, True, "64"])
def test_bad_size_raises(size: object) -> None:
    with pytest.raises(ValueError, match=r"^size must be a positive integer or None, got "):
        sample_image("mosaic", size)  # type: ignore[arg-type]


# --- unknown names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call", [sample_image, sample_path, lambda name: resolve_image_source(SAMPLE_PREFIX + name)])
def test_unknown_name_is_one_line_listing_the_names(call) -> None:
    expected = f"unknown sample 'nope'; expected one of {', '.join(SAMPLES)}"
    with pytest.raises(ValueError) as info:
        call("nope")
    assert str(info.value) == expected


# --- resolve_image_source ------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_resolve_bare_name(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no file of that name here
    resolved = resolve_image_source(name)
    assert isinstance(resolved, Image.Image)
    assert resolved.tobytes() == sample_image(name).tobytes()


def test_prefix_means_the_sample_even_if_a_file_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / f"{SAMPLE_PREFIX}scream").touch()
    monkeypatch.chdir(tmp_path)
    resolved = resolve_image_source(f"{SAMPLE_PREFIX}scream")
    assert isinstance(resolved, Image.Image)
    assert resolved.tobytes() == sample_image("scream").tobytes()


def test_existing_file_wins_over_bare_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tubingen").touch()
    monkeypatch.chdir(tmp_path)
    assert resolve_image_source("tubingen") == "tubingen"


def test_paths_and_images_pass_through(tmp_path: Path) -> None:
    path = Path("tubingen")  # a PathLike is always a path, even with a sample's name
    assert resolve_image_source(path) is path
    assert resolve_image_source(str(tmp_path / "photo.jpg")) == str(tmp_path / "photo.jpg")
    image = Image.new("RGB", (4, 4))
    assert resolve_image_source(image) is image


# --- scripts/paint_samples.py --------------------------------------------------------------------


def test_painter_is_deterministic_and_styles_differ(painter: ModuleType) -> None:
    painted = {name: painter.paint(name, 64) for name in painter.FILES}
    for name, image in painted.items():
        assert image.mode == "RGB" and image.size == (64, 64)
        assert painter.paint(name, 64).tobytes() == image.tobytes(), name
    assert len({image.tobytes() for image in painted.values()}) == len(painted)


def test_painted_samples_are_shipped_at_full_size(painter: ModuleType) -> None:
    for name, file in painter.FILES.items():
        assert name in STYLE_SAMPLES and "generated by nst_utils, CC0" in SAMPLES[name]
        assert sample_path(name).name == file  # the script writes the files the package reads
        with Image.open(sample_path(name)) as stored:
            assert stored.size == (painter.SIZE, painter.SIZE) == (1024, 1024)


def test_painter_rejects_bad_arguments(painter: ModuleType) -> None:
    expected = f"^unknown painted sample 'nope'; expected one of {', '.join(painter.FILES)}$"
    with pytest.raises(ValueError, match=expected):
        painter.paint("nope", 64)
    with pytest.raises(ValueError, match=f"^size must be at least {painter.MIN_SIZE} pixels, got 8$"):
        painter.paint("mosaic", 8)
