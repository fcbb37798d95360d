"""Tests for nst_utils.images: loading any image into the one tensor convention, saving PNGs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import rand
from PIL import Image

from nst_utils import image_files
from nst_utils.config import MIN_SIZE
from nst_utils.images import (
    METADATA_KEY,
    ImageError,
    load_image,
    read_metadata,
    resize,
    save_image,
    target_size,
    to_display,
    to_uint8,
)

RED, WHITE = (255, 0, 0), (255, 255, 255)


def _rgb(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (10, 120, 240)) -> Image.Image:
    return Image.new("RGB", (width, height), colour)


def _noise_jpeg(path: Path, side: int = 256) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path, quality=90)
    return path


def _assert_convention(x: torch.Tensor) -> None:
    assert x.dtype == torch.float32
    assert x.dim() == 4 and x.shape[:2] == (1, 3)
    assert x.min() >= 0 and x.max() <= 1


# --- smoke / shape -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "TIFF", "WEBP"])
def test_load_any_format_from_path(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"im.{fmt.lower()}"
    _rgb(64, 40).save(path, format=fmt)
    x = load_image(path)
    _assert_convention(x)
    assert x.shape == (1, 3, 40, 64)
    assert load_image(str(path)).shape == x.shape  # str or PathLike


def test_load_pil_image_and_sample_name() -> None:
    x = load_image(_rgb(64, 48, RED))
    _assert_convention(x)
    assert x.shape == (1, 3, 48, 64)
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    hopper = load_image("hopper")
    _assert_convention(hopper)
    assert hopper.shape == (1, 3, 600, 512)  # the photo at its own size, H x W
    assert load_image("sample:mosaic", 48).shape == (1, 3, 48, 48)


def test_resize_longest_side_keeps_aspect() -> None:
    x = load_image(_rgb(100, 50), 64)
    assert x.shape == (1, 3, 32, 64)
    y = load_image(_rgb(50, 100), 64)
    assert y.shape == (1, 3, 64, 32)
    assert load_image("hopper", 60).shape == (1, 3, 60, 51)  # 512x600 -> round(512 * 0.1) = 51


def test_resize_to_exact_height_width() -> None:
    x = load_image(_rgb(100, 50), (40, 70))
    assert x.shape == (1, 3, 40, 70)
    assert target_size(100, 50, (40, 70)) == (40, 70)
    assert target_size(100, 50, None) == (50, 100)


def test_resize_of_constant_image_is_constant_and_in_range() -> None:
    x = torch.full((1, 3, 50, 100), 0.25)
    y = resize(x, 64)
    assert y.shape == (1, 3, 32, 64)
    torch.testing.assert_close(y, torch.full_like(y, 0.25))
    assert resize(x, (50, 100)) is x  # no-op when already at the size
    # Bicubic overshoots at a sharp edge; the result is clamped back into the box.
    edge = torch.zeros(1, 3, 64, 64)
    edge[..., 32:] = 1.0
    up = resize(edge, 200)
    assert up.min() >= 0 and up.max() <= 1


# --- colour modes (analytic values) --------------------------------------------------------------


def test_grayscale_l() -> None:
    x = load_image(Image.new("L", (40, 40), 128))
    _assert_convention(x)
    torch.testing.assert_close(x, torch.full((1, 3, 40, 40), 128 / 255))


@pytest.mark.parametrize("transparency", [False, True])
def test_palette(tmp_path: Path, transparency: bool) -> None:
    im = Image.new("P", (40, 40), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    im.paste(1, (20, 0, 40, 40))  # right half: palette entry 1 = blue
    path = tmp_path / "p.png"
    if transparency:
        im.save(path, transparency=1)  # the blue entry is fully transparent -> white
    else:
        im.save(path)
    assert Image.open(path).mode == "P"
    x = load_image(path)
    torch.testing.assert_close(x[0, :, 5, 5], torch.tensor([1.0, 0.0, 0.0]))
    right = [1.0, 1.0, 1.0] if transparency else [0.0, 0.0, 1.0]
    torch.testing.assert_close(x[0, :, 5, 35], torch.tensor(right))


def test_rgba_composited_on_white(tmp_path: Path) -> None:
    im = Image.new("RGBA", (40, 40), (0, 0, 0, 0))  # fully transparent black
    im.paste((255, 0, 0, 255), (0, 0, 20, 40))  # opaque red on the left
    im.paste((0, 0, 255, 128), (20, 20, 40, 40))  # half-transparent blue bottom right
    path = tmp_path / "rgba.png"
    im.save(path)
    x = load_image(path)
    _assert_convention(x)
    torch.testing.assert_close(x[0, :, 5, 5], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(x[0, :, 5, 35], torch.tensor([1.0, 1.0, 1.0]))  # not black
    # 50 % blue over white: (255 * 127/255, same, 255) up to PIL's 8-bit rounding.
    torch.testing.assert_close(x[0, :, 35, 35], torch.tensor([0.5, 0.5, 1.0]), atol=2 / 255, rtol=0)


def test_la_composited_on_white() -> None:
    im = Image.new("LA", (40, 40), (0, 0))
    im.paste((0, 255), (0, 0, 20, 40))  # opaque black left, transparent right
    x = load_image(im)
    torch.testing.assert_close(x[0, :, 5, 5], torch.zeros(3))
    torch.testing.assert_close(x[0, :, 5, 35], torch.ones(3))


@pytest.mark.parametrize("fmt", [None, "TIFF", "JPEG"])
def test_cmyk(tmp_path: Path, fmt: str | None) -> None:
    im = Image.new("CMYK", (40, 40), (0, 255, 255, 0))  # 0 % cyan, 100 % magenta and yellow: red
    im.paste((255, 0, 0, 0), (20, 0, 40, 40))  # 100 % cyan: (0, 1, 1)
    if fmt is not None:
        path = tmp_path / f"cmyk.{fmt.lower()}"
        im.save(path, format=fmt)
        im = path
    x = load_image(im)
    tol = 3 / 255 if fmt == "JPEG" else 0.0
    torch.testing.assert_close(x[0, :, 20, 5], torch.tensor([1.0, 0.0, 0.0]), atol=tol, rtol=0)
    torch.testing.assert_close(x[0, :, 20, 35], torch.tensor([0.0, 1.0, 1.0]), atol=tol, rtol=0)


@pytest.mark.parametrize("via_png", [False, True])
def test_sixteen_bit(tmp_path: Path, via_png: bool) -> None:
    arr = np.zeros((40, 40), np.uint16)
    arr[:, :20] = 65535
    arr[:, 20:] = 32768
    arr[:4, :4] = 1000  # below 255 * 257: must not be read as 8-bit white
    im = Image.fromarray(arr)
    assert im.mode == "I;16"
    if via_png:
        im.save(tmp_path / "16.png")
        im = tmp_path / "16.png"
    x = load_image(im)
    _assert_convention(x)
    torch.testing.assert_close(x[0, :, 10, 10], torch.ones(3))
    torch.testing.assert_close(x[0, :, 10, 30], torch.full((3,), 32768 / 65535))
    assert abs(float(x[0, 0, 10, 30]) - 0.5) < 1e-3
    torch.testing.assert_close(x[0, :, 0, 0], torch.full((3,), 1000 / 65535))


# --- EXIF orientation ----------------------------------------------------------------------------


CORNERS = {"top-left": (4, 4), "top-right": (4, 35), "bottom-left": (59, 4), "bottom-right": (59, 35)}


@pytest.mark.parametrize(
    ("orientation", "fmt", "corner"),
    [
        (6, "JPEG", "top-right"),  # stored image needs rotating 90 degrees clockwise
        (6, "PNG", "top-right"),
        (8, "PNG", "bottom-left"),  # 90 degrees counter-clockwise
        (8, "JPEG", "bottom-left"),
    ],
)
def test_exif_orientation_applied(tmp_path: Path, orientation: int, fmt: str, corner: str) -> None:
    stored = Image.new("RGB", (64, 40), WHITE)  # stored landscape: 64 wide, 40 high
    stored.paste(RED, (0, 0, 12, 12))  # a marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"exif.{fmt.lower()}"
    stored.save(path, format=fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))
    x = load_image(path)
    assert x.shape == (1, 3, 64, 40)  # displayed portrait: 40 wide, 64 high
    for name, (r, c) in CORNERS.items():
        pixel = x[0, :, r, c]
        if name == corner:
            torch.testing.assert_close(pixel, torch.tensor([1.0, 0.0, 0.0]), atol=0.1, rtol=0)
        else:
            torch.testing.assert_close(pixel, torch.ones(3), atol=0.1, rtol=0)


# --- display / uint8 -----------------------------------------------------------------------------


def test_to_display_clips_and_transposes() -> None:
    x = torch.tensor([-0.5, 0.25, 1.5]).view(1, 3, 1, 1).expand(1, 3, 2, 5).clone()
    out = to_display(x)
    assert isinstance(out, np.ndarray)
    assert out.shape == (2, 5, 3)
    np.testing.assert_array_equal(out[0, 0], np.array([0.0, 0.25, 1.0], np.float32))
    assert to_display(x[0]).shape == (2, 5, 3)  # (3, H, W) accepted too


def test_to_display_rejects_batches_and_wrong_channels() -> None:
    with pytest.raises(ValueError, match="batch of 2"):
        to_display(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"\(1, 4, 4, 4\)"):
        to_display(torch.zeros(1, 4, 4, 4))


def test_to_uint8_rounds() -> None:
    x = torch.tensor([0.6 / 255, 127.6 / 255, 254.6 / 255]).view(1, 3, 1, 1)
    out = to_uint8(x)
    assert out.dtype == np.uint8 and out.shape == (1, 1, 3)
    np.testing.assert_array_equal(out[0, 0], np.array([1, 128, 255], np.uint8))  # truncation: 0, 127, 254
    x = torch.tensor([0.4 / 255, -1.0, 1.2]).view(1, 3, 1, 1)
    np.testing.assert_array_equal(to_uint8(x)[0, 0], np.array([0, 0, 255], np.uint8))


# --- saving --------------------------------------------------------------------------------------


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_save_roundtrip_and_metadata(tmp_path: Path) -> None:
    x = rand(1, 3, 40, 56)
    out = tmp_path / "result.png"
    meta = {"ratio": 1e-3, "layers": ("relu1_1", "relu2_1"), "path": tmp_path, "nested": {"a": 1}}
    assert save_image(x, out, meta) == out
    assert _leftovers(tmp_path, {"result.png"}) == []  # no temporary file left behind
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "RGB" and im.size == (56, 40)
        np.testing.assert_array_equal(np.asarray(im), to_uint8(x))
        assert json.loads(im.text[METADATA_KEY])["ratio"] == 1e-3
    got = read_metadata(out)
    assert got == {"ratio": 1e-3, "layers": ["relu1_1", "relu2_1"], "path": str(tmp_path), "nested": {"a": 1}}
    back = load_image(out)
    torch.testing.assert_close(back, torch.from_numpy(to_uint8(x)).permute(2, 0, 1)[None].float() / 255)


def test_read_metadata_of_plain_png_is_empty(tmp_path: Path) -> None:
    _rgb().save(tmp_path / "plain.png")
    assert read_metadata(tmp_path / "plain.png") == {}
    save_image(torch.zeros(1, 3, 32, 32), tmp_path / "nometa.png")
    assert read_metadata(tmp_path / "nometa.png") == {}


def test_save_is_atomic_on_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_save(self: Image.Image, fp, *args, **kwargs) -> None:
        fp.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    fresh = tmp_path / "fresh.png"
    with pytest.raises(OSError, match="disk full"):
        save_image(torch.zeros(1, 3, 32, 32), fresh)
    assert not fresh.exists()
    existing = tmp_path / "existing.png"
    existing.write_bytes(b"old bytes")
    with pytest.raises(OSError, match="disk full"):
        save_image(torch.zeros(1, 3, 32, 32), existing)
    assert existing.read_bytes() == b"old bytes"
    assert _leftovers(tmp_path, {"existing.png"}) == []


def test_save_replaces_existing_file(tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    out.write_bytes(b"old")
    save_image(torch.ones(1, 3, 32, 32), out)
    with Image.open(out) as im:
        assert im.getpixel((0, 0)) == WHITE


# --- exceptions ----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jpg"
    with pytest.raises(ImageError, match=r"nope\.jpg: no such file"):
        load_image(path)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=f"{tmp_path.name}: is a directory"):
        load_image(tmp_path)


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, not pixels\n" * 20)
    with pytest.raises(ImageError, match=r"notes\.txt: not an image"):
        load_image(path)


def test_truncated_jpeg(tmp_path: Path) -> None:
    full = _noise_jpeg(tmp_path / "full.jpg")
    assert len(full.read_bytes()) > 20_000
    load_image(full)  # the intact file loads
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[:2048])
    with pytest.raises(ImageError, match=r"cut\.jpg: corrupt or truncated"):
        load_image(cut)


def test_a_refused_image_leaves_no_open_file(tmp_path: Path) -> None:
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(_noise_jpeg(tmp_path / "full.jpg").read_bytes()[:2048])
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc/self/fd")
    before = len(list(fds.iterdir()))
    with pytest.raises(ImageError) as caught:  # the traceback keeps the PIL image alive
        load_image(cut)
    assert caught.value.__cause__ is not None
    assert len(list(fds.iterdir())) == before


def test_too_small(tmp_path: Path) -> None:
    path = tmp_path / "tiny.png"
    _rgb(20, 20).save(path)
    with pytest.raises(ImageError, match=rf"tiny\.png: 20x20 .*at least {MIN_SIZE} pixels") as info:
        load_image(path)
    assert "32" in str(info.value)
    with pytest.raises(ImageError, match="20x20"):
        load_image(_rgb(20, 20))  # PIL images are checked too
    # Big enough on disk, too small after resizing: 100x40 at longest side 64 is 64x26.
    with pytest.raises(ImageError, match="too small"):
        load_image(_rgb(100, 40), 64)
    with pytest.raises(ImageError, match=r"^hopper: resized to 27x32 pixels, which is too small"):
        load_image("hopper", 32)  # a sample is named as given


@pytest.mark.parametrize("size", [16, 5000, (64, 10)])
def test_size_out_of_range(size: int | tuple[int, int]) -> None:
    with pytest.raises(ImageError, match=r"out of range; expected 32\.\.4096"):
        load_image(_rgb(), size)


def test_decompression_bomb_our_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bomb.png"
    _rgb(64, 64).save(path)
    monkeypatch.setattr(image_files, "MAX_PIXELS", 64 * 64 - 1)  # where the reading checks live
    with pytest.raises(ImageError, match=r"bomb\.png: 64x64 pixels.*decompression bomb"):
        load_image(path)
    monkeypatch.setattr(image_files, "MAX_PIXELS", 64 * 64)
    assert load_image(path).shape == (1, 3, 64, 64)  # exactly at the limit is fine


@pytest.mark.parametrize("limit", [1000, 3000])  # > 2x PIL's limit: error; 1x..2x: warning
def test_decompression_bomb_pil_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    path = tmp_path / "bomb.png"
    _rgb(64, 64).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(ImageError, match=r"bomb\.png: .*decompression bomb"):
        load_image(path)


@pytest.mark.parametrize("name", ["out.jpg", "out", "out.png.txt"])
def test_save_refuses_non_png(tmp_path: Path, name: str) -> None:
    with pytest.raises(ImageError, match=r"must be a \.png file"):
        save_image(torch.zeros(1, 3, 32, 32), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_missing_folder_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="missing.*does not exist"):
        save_image(torch.zeros(1, 3, 32, 32), tmp_path / "missing" / "out.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageError, match=r"dir\.png: is a directory"):
        save_image(torch.zeros(1, 3, 32, 32), tmp_path / "dir.png")


def test_save_in_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    save_image(torch.zeros(1, 3, 32, 32), "here.png")
    assert (tmp_path / "here.png").is_file()
    assert oct(os.stat(tmp_path / "here.png").st_mode & 0o777) == oct(0o644)
