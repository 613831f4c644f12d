"""Image loading (every PNG flavour, JPEG), resizing, saving, and one-line input errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from inr_utils.errors import InputError
from inr_utils.files import atomic_write, write_text
from inr_utils.images import load_image, resize_to_max_size, save_image, to_uint8

RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, size=(6, 10, 3), dtype=np.uint8)


def _save(path, array, **kwargs):
    Image.fromarray(array).save(path, **kwargs)
    return path


def test_rgb_png(tmp_path):
    out = load_image(_save(tmp_path / "rgb.png", RGB8))
    assert out.shape == (6, 10, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, RGB8 / 255.0, atol=1e-7)


def test_grayscale_png_has_one_channel(tmp_path):
    gray = RGB8[..., 0]
    out = load_image(_save(tmp_path / "gray.png", gray))
    assert out.shape == (6, 10, 1)
    np.testing.assert_allclose(out[..., 0], gray / 255.0, atol=1e-7)


def test_rgba_composited_over_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (0, 0, 0, 0)  # fully transparent black -> white
    rgba[0, 1] = (255, 0, 0, 255)  # opaque red stays red
    rgba[1, 0] = (0, 0, 0, 255)  # opaque black stays black
    rgba[1, 1] = (0, 0, 255, 51)  # 20 % blue over white
    out = load_image(_save(tmp_path / "rgba.png", rgba))
    assert out.shape == (2, 2, 3)
    np.testing.assert_allclose(out[0, 0], [1.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(out[0, 1], [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(out[1, 0], [0.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(out[1, 1], [0.8, 0.8, 1.0], atol=1e-6)


def test_gray_alpha_composited_over_white(tmp_path):
    la = np.array([[[0, 0], [100, 255]]], np.uint8)  # (1, 2, 2): transparent black, opaque gray
    Image.merge("LA", [Image.fromarray(la[..., 0]), Image.fromarray(la[..., 1])]).save(tmp_path / "la.png")
    out = load_image(tmp_path / "la.png")
    assert out.shape == (1, 2, 1)
    np.testing.assert_allclose(out[0, :, 0], [1.0, 100 / 255], atol=1e-6)


def test_palette_png(tmp_path):
    colours = RGB8[:2, :2].reshape(-1, 3)  # 4 distinct-ish colours
    rgb = np.stack([colours[i % 4] for i in range(12)]).reshape(3, 4, 3)
    img = Image.fromarray(rgb).quantize(colors=4, dither=Image.Dither.NONE)
    img.save(tmp_path / "pal.png")
    assert Image.open(tmp_path / "pal.png").mode == "P"
    out = load_image(tmp_path / "pal.png")
    assert out.shape == (3, 4, 3)
    np.testing.assert_allclose(out, np.asarray(img.convert("RGB")) / 255.0, atol=1e-7)
    np.testing.assert_allclose(out, rgb / 255.0, atol=1e-7)  # four colours fit the palette exactly


def test_palette_png_with_transparency(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    img.info["transparency"] = 0  # palette entry 0 (red) is transparent
    img.save(tmp_path / "palt.png", transparency=0)
    out = load_image(tmp_path / "palt.png")
    assert out.shape == (1, 2, 3)
    np.testing.assert_allclose(out[0, 0], [1.0, 1.0, 1.0], atol=1e-6)  # transparent -> white
    np.testing.assert_allclose(out[0, 1], [0.0, 0.0, 1.0], atol=1e-6)


def test_16bit_grayscale_png(tmp_path):
    values = np.array([[0, 200, 1000], [32768, 65000, 65535]], np.uint16)
    path = _save(tmp_path / "g16.png", values)
    assert Image.open(path).mode.startswith("I")
    out = load_image(path)
    assert out.shape == (2, 3, 1)
    np.testing.assert_allclose(out[..., 0], values / 65535.0, atol=1e-7)
    # all values below 256: still scaled by 65535, not mistaken for 8-bit data
    low = load_image(_save(tmp_path / "g16low.png", np.full((2, 2), 200, np.uint16)))
    np.testing.assert_allclose(low, 200 / 65535.0, atol=1e-9)


def test_jpeg(tmp_path):
    smooth = np.broadcast_to(np.linspace(0, 255, 16, dtype=np.uint8)[None, :, None], (16, 16, 3)).copy()
    path = _save(tmp_path / "img.jpg", smooth, quality=95)
    out = load_image(path)
    assert out.shape == (16, 16, 3) and out.dtype == np.float32
    assert np.abs(out - smooth / 255.0).max() < 0.05


@pytest.mark.parametrize("shape, max_size, expected", [((40, 20, 3), 10, (10, 5, 3)), ((30, 60, 1), 24, (12, 24, 1)),
                                                        ((10, 20, 3), 50, (10, 20, 3)), ((9, 9, 3), 9, (9, 9, 3))])
def test_max_size_keeps_aspect_ratio(tmp_path, shape, max_size, expected):
    array = RNG.integers(0, 256, size=shape, dtype=np.uint8)
    path = _save(tmp_path / "big.png", array[..., 0] if shape[-1] == 1 else array)
    out = load_image(path, max_size=max_size)
    assert out.shape == expected
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_resize_of_constant_image_is_constant():
    out = resize_to_max_size(np.full((30, 40, 3), 0.25, np.float32), 8)
    assert out.shape == (6, 8, 3)
    np.testing.assert_allclose(out, 0.25, atol=1e-5)
    with pytest.raises(InputError, match="max-size"):
        resize_to_max_size(np.zeros((4, 4, 1), np.float32), 0)


@pytest.mark.parametrize("channels", [3, 1])
def test_save_image_round_trip(tmp_path, image, channels):
    data = image[..., :channels]
    save_image(tmp_path / "out.png", data)
    assert (tmp_path / "out.png").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary file left behind
    back = load_image(tmp_path / "out.png")
    assert back.shape == data.shape
    assert np.abs(back - data).max() <= 0.5 / 255 + 1e-6


def test_to_uint8_clips_and_rounds():
    out = to_uint8(np.array([[[-0.5], [0.5], [1.5]]], np.float32))
    assert out.dtype == np.uint8 and out.shape == (1, 3)
    np.testing.assert_array_equal(out, [[0, 128, 255]])


# ------------------------------------------------------------------------------------------ errors


def _assert_input_error(path, *words):
    with pytest.raises(InputError) as err:
        load_image(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    for word in words:
        assert word in message
    return message


def test_missing_file(tmp_path):
    _assert_input_error(tmp_path / "nope.png", "does not exist")


def test_directory(tmp_path):
    _assert_input_error(tmp_path, "directory")


def test_empty_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    _assert_input_error(tmp_path / "empty.png", "empty")


def test_truncated_png(tmp_path):
    full = _save(tmp_path / "full.png", RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8))
    data = full.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    _assert_input_error(tmp_path / "cut.png", "truncated")


def test_text_file_is_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("this is not an image\n")
    _assert_input_error(tmp_path / "notes.png", "not an image")


def test_input_error_is_value_error():
    assert issubclass(InputError, ValueError)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_png_follows_the_umask(tmp_path, umask):
    """Like any file a program writes (it was 0600 whatever the umask, from mkstemp)."""
    old = os.umask(umask)
    try:
        save_image(tmp_path / "x.png", np.zeros((2, 3, 3), np.float32))
        (tmp_path / "y.txt").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "x.png").stat().st_mode & 0o777 == 0o666 & ~umask == (tmp_path / "y.txt").stat().st_mode & 0o777
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "results.csv"
    write_text(target, "old\n")

    def broken(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]  # no temporary file left behind
    suffixes = []
    atomic_write(tmp_path / "f.png", lambda tmp: suffixes.append(tmp.suffix) or tmp.write_bytes(b"x"))
    assert suffixes == [".png"]  # the temporary file keeps the suffix writers read the format from
