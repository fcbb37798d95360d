"""Tests for nst_utils.samples (the offline sample images and masks), scripts/paint_samples.py and
scripts/make_sky_mask.py."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from helpers import ROOT, load_script
from PIL import Image
from scipy import ndimage

from nst_utils.samples import (
    CONTENT_SAMPLES,
    MASKS,
    SAMPLE_PREFIX,
    SAMPLES,
    STYLE_SAMPLES,
    mask_path,
    resolve_image_source,
    sample_image,
    sample_mask,
    sample_path,
)

HOPPER_SIZE = (512, 600)  # matplotlib's photo; not stored with ours, so not in CREDITS.md


def _credited_sizes() -> dict[str, tuple[str, tuple[int, int]]]:
    """CREDITS.md's tables as {sample or mask name: (file name, (width, height))}."""
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
    assert set(credited) == set(SAMPLES) - {"hopper"} | set(MASKS)
    for name, (file, _) in credited.items():
        assert (mask_path(name) if name in MASKS else sample_path(name)).name == file


@pytest.mark.parametrize("name", [*SAMPLES, *MASKS])
def test_description_names_a_licence(name: str) -> None:
    description = {**SAMPLES, **MASKS}[name]
    assert re.search(r"public domain|CC BY 3\.0|CC0", description), description


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


# --- masks: tubingen_sky and scripts/make_sky_mask.py -------------------------------------------

#: The sky's share of the Neckarfront's pixels, as measured on the shipped mask (0.343).
SKY_FRACTION = (0.33, 0.36)


@pytest.fixture(scope="module")
def sky_maker() -> ModuleType:
    """``scripts/make_sky_mask.py`` imported as a module (its ``main`` does not run)."""
    return load_script("make_sky_mask")


def _sky() -> np.ndarray:
    """The stored sky mask as booleans, True for sky."""
    return np.asarray(sample_mask("tubingen_sky")) > 127


def test_sky_mask_lies_over_the_photo() -> None:
    mask = sample_mask("tubingen_sky")
    assert mask.mode == "L"
    assert mask.size == sample_image("tubingen").size == _credited_sizes()["tubingen_sky"][1]
    with Image.open(mask_path("tubingen_sky")) as stored:
        assert stored.mode == "L"  # stored single-channel, 8 bit


def test_sky_mask_is_binary_and_plausible() -> None:
    pixels = np.asarray(sample_mask("tubingen_sky"))
    assert set(np.unique(pixels)) <= {0, 255}
    sky = pixels == 255
    assert SKY_FRACTION[0] < sky.mean() < SKY_FRACTION[1]
    assert sky[0].mean() > 0.95  # the top row is sky (but for the tree's branches in the corner)
    assert not sky[400:].any()  # the lowest roofs and tree tops are near row 370; below, none
    # One open sky, reaching the top, and a few patches seen through the tree on the left.
    labels, count = ndimage.label(sky)
    areas = ndimage.sum_labels(sky, labels, np.arange(1, count + 1))
    assert labels[0].max() == np.argmax(areas) + 1 and areas.max() > 0.98 * sky.sum()
    patches = ndimage.find_objects(labels)
    assert all(patch[1].stop < 200 for i, patch in enumerate(patches) if i + 1 != labels[0].max())
    # The town, the river and the trees: one region with no holes, and the branches in the corner.
    assert ndimage.label(~sky)[1] <= 2


@pytest.mark.parametrize(
    ("box", "sky_share"),
    [
        ((0, 300, 20, 500), 1.0),  # open sky, top middle
        ((60, 700, 120, 1000), 1.0),  # open sky over the tower and the roofs on the right
        ((215, 650, 245, 695), 0.0),  # the church tower's belfry, its clock faces bluish
        ((145, 669, 175, 673), 0.0),  # the slate spire, slate-blue and a few pixels wide
        ((380, 600, 420, 1000), 0.0),  # facades just under the roofline
        ((600, 40, 768, 300), 0.0),  # the river, where it reflects the sky
    ],
)
def test_sky_mask_regions(box: tuple[int, int, int, int], sky_share: float) -> None:
    top, left, bottom, right = box
    assert _sky()[top:bottom, left:right].mean() == sky_share


def test_sky_mask_scales_with_the_photo() -> None:
    for size in (256, 512, 1024, 2048):
        assert sample_mask("tubingen_sky", size).size == sample_image("tubingen", size).size
    small = np.asarray(sample_mask("tubingen_sky", 256), dtype=np.float64) / 255
    # Area averaging: the sky's share survives the shrinking, edges turn grey.
    assert abs(small.mean() - _sky().mean()) < 0.002
    assert ((small > 0) & (small < 1)).any()


def test_sky_mask_loads_as_a_mask() -> None:
    from nst_utils.masks import load_mask

    mask = load_mask(mask_path("tubingen_sky"), (192, 256))
    assert mask.shape == (1, 1, 192, 256)
    assert abs(mask.mean().item() - _sky().mean()) < 0.002


def test_mask_errors() -> None:
    with pytest.raises(ValueError, match=r"^unknown mask 'sky'; expected one of tubingen_sky$"):
        sample_mask("sky")
    with pytest.raises(ValueError, match=r"^unknown mask 'tubingen'; expected one of tubingen_sky$"):
        mask_path("tubingen")
    with pytest.raises(ValueError, match=r"^size must be a positive integer or None, got 0$"):
        sample_mask("tubingen_sky", 0)


def test_mask_files_are_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for name in MASKS:
        file = mask_path(name).relative_to(ROOT / "nst_utils").as_posix()
        assert any(fnmatch.fnmatch(file, p) for p in patterns["nst_utils"]), (file, patterns)


def test_sky_mask_script_reproduces_the_shipped_file(sky_maker: ModuleType, tmp_path: Path) -> None:
    assert sky_maker.PHOTO == sample_path("tubingen") and sky_maker.OUTPUT == mask_path("tubingen_sky")
    out = tmp_path / "sky.png"
    sky_maker.main([str(out)])  # about a second
    with Image.open(out) as made:
        assert np.array_equal(np.asarray(made) == 255, _sky()), "the script's mask has changed"
    # Same pixels but other bytes would mean another PNG encoder: re-run the script to re-encode.
    assert out.read_bytes() == mask_path("tubingen_sky").read_bytes()


def test_sky_mask_script_leaves_out_the_reflection(sky_maker: ModuleType) -> None:
    """The river reflects the sky, bluish in the lower left, but is not connected to it."""
    photo = sample_image("tubingen")
    river = np.asarray(photo, dtype=np.int16)[700:, 40:160]
    assert (river[..., 2] - river[..., 0] > sky_maker.BLUE_OVER_RED).mean() > 0.4
    assert not np.asarray(sky_maker.sky_mask(photo))[600:].any()
