"""INR compression (inr_utils.applications.compression): quantisation bound, the .inrc bitstream round trip and
its bpp arithmetic, the straight-through fine-tune, bad files and bit depths, and experiments/compress.py end to
end."""

from __future__ import annotations

import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_scripts, run_scripts_in_one_process, synthetic_image, write_png

from inr_utils.applications.compression import (
    CompressionSettings,
    SirenArchitecture,
    decode,
    encode_params,
    fake_quantize,
    finetune_quantized,
    fit_sirens,
    jpeg_curve,
    jpeg_psnr_at,
    psnr_uint8,
    quantize,
    quantized_params,
)
from inr_utils.applications.compression_format import CODERS, CompressedImage, bits_per_pixel, check_bits
from inr_utils.errors import InputError
from model_components.inrs import build_model

ARCH = SirenArchitecture(8, 1)
SHAPE = (32, 32, 3)


@pytest.fixture(scope="module")
def params():
    model = build_model(ARCH.model_config(3))
    return jax.device_get(model.init(jax.random.key(1), jnp.zeros((1, 2)))["params"])


@pytest.fixture(scope="module")
def fitted():
    """A tiny SIREN fitted for 60 steps to the synthetic image."""
    image = synthetic_image(32, 32)
    settings = CompressionSettings(steps=60, lr=3e-3, batch_size=None, qat_steps=40, qat_lr=1e-3)
    return image, fit_sirens([image], ARCH, settings, progress=False)[0], settings


@pytest.mark.parametrize("bits", [16, 8, 6, 2, 1])
def test_quantisation_error_is_at_most_half_a_step(bits):
    rng = np.random.default_rng(bits)
    for w in (rng.normal(0, 0.3, (17, 5)), rng.uniform(-1e-3, 2.0, 40), np.full(7, 0.123)):
        codes, offset, scale = quantize(w, bits)
        assert codes.dtype == np.uint16 and codes.max() <= (1 << bits) - 1
        error = np.abs(w - (np.float32(offset) + np.float32(scale) * codes.astype(np.float32)))
        assert error.max() <= float(scale) / 2 * (1 + 1e-5) + 1e-7
    # the fine-tune's rounding is the file's (same grid up to float16 rounding of scale and offset)
    w = rng.normal(0, 0.3, 64).astype(np.float32)
    codes, offset, scale = quantize(w, bits)
    np.testing.assert_allclose(fake_quantize(jnp.asarray(w), bits), offset + scale * codes.astype(np.float32),
                               atol=1.01 * float(scale) + 1e-6)


def test_fake_quantize_passes_gradients_straight_through():
    w = jnp.linspace(-1.0, 1.0, 11)
    c = jnp.arange(11.0)
    np.testing.assert_allclose(jax.grad(lambda w: jnp.sum(fake_quantize(w, 4) * c))(w), c)


@pytest.mark.parametrize("coder", [*CODERS.values(), "best"])
def test_bitstream_round_trips_bytes_and_pixels(params, coder):
    for bits in (16, 8, 6):
        data = encode_params(params, ARCH, SHAPE, bits, coder)
        record = CompressedImage.from_bytes(data)
        assert record.to_bytes() == data  # parse -> write: the same bytes
        assert (record.height, record.width, record.channels, record.bits) == (32, 32, 3, bits)
        values, codes, _, _ = quantized_params(params, bits)
        for got, want in zip(record.codes, codes, strict=True):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(record.dequantized()[0], np.ravel(jax.tree.leaves(values)[0]))
        first, second = decode(data), decode(data)
        assert first.shape == SHAPE and first.dtype == np.uint8
        np.testing.assert_array_equal(first, second)
        assert encode_params(params, ARCH, SHAPE, bits, coder) == data  # deterministic encoder


@pytest.mark.parametrize("coder", ["raw", "zlib", "ans-gauss"])
def test_first_layer_at_its_own_bit_depth_round_trips(params, coder):
    data = encode_params(params, ARCH, SHAPE, 6, coder, first_layer_bits=16)
    record = CompressedImage.from_bytes(data)
    shapes = ARCH.tensor_shapes(3)
    assert record.bits == 6 and record.depths == tuple(16 if s in [(2, 8), (8,)] and i in (2, 3) else 6
                                                     for i, s in enumerate(shapes))
    assert record.to_bytes() == data
    assert max(c.max() for c in record.codes) > 63  # 16-bit codes in the first layer
    np.testing.assert_array_equal(decode(data), decode(record))


def test_best_coder_is_the_smallest_and_bpp_counts_the_header(params):
    sizes = {c: len(encode_params(params, ARCH, SHAPE, 8, c)) for c in CODERS.values()}
    best = encode_params(params, ARCH, SHAPE, 8, "best")
    assert len(best) == min(sizes.values())
    assert bits_per_pixel(len(best), 32, 32) == 8 * len(best) / 1024
    # the payload alone is below the file: header (19 bytes), per-tensor bit depth and grid, CRC count too
    weights = ARCH.num_params(3)
    assert sizes["raw"] == 19 + 5 * len(ARCH.tensor_shapes(3)) + weights + 4
    assert ARCH.num_params(3) == 3 * 8 + 1 * (8 * 8 + 8) + 9 * 3


def test_finetune_with_quantisation_in_the_loop_does_not_raise_the_quantised_loss(fitted):
    image, params, settings = fitted
    tuned, before, after = finetune_quantized(image, ARCH, params, 4, settings, progress=False)
    assert after <= before
    decoded = decode(encode_params(tuned, ARCH, image.shape, 4, first_layer_bits=settings.first_layer_bits))
    assert 10 * np.log10(1 / after) == pytest.approx(psnr_uint8(decoded, image), abs=0.3)  # 8-bit output rounding


def test_corrupt_truncated_and_foreign_files_are_refused(params):
    data = encode_params(params, ARCH, SHAPE, 8, "ans-gauss")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    for bad in (bytes(flipped), data[:-5], data[:10], b"", b"\x89PNG" + data[4:]):
        with pytest.raises(InputError, match="not a valid .inrc file"):
            CompressedImage.from_bytes(bad)


@pytest.mark.parametrize("bits", [0, 17, 32, -1, 8.0, True])
def test_bit_depths_the_format_cannot_hold_are_refused(params, bits):
    with pytest.raises(InputError, match="bit depth"):
        check_bits(bits)
    with pytest.raises(InputError, match="bit depth"):
        encode_params(params, ARCH, SHAPE, bits)


def test_jpeg_curve_and_interpolation():
    image = synthetic_image(32, 32)
    curve = jpeg_curve(image, (5, 50, 95))
    assert [r["quality"] for r in curve] == [5, 50, 95]
    assert all(r["bpp"] == 8 * r["bytes"] / 1024 for r in curve)
    assert curve[0]["psnr"] < curve[-1]["psnr"]
    mid = (curve[0]["bpp"] + curve[1]["bpp"]) / 2
    assert curve[0]["psnr"] <= jpeg_psnr_at(curve, mid) <= curve[1]["psnr"]
    assert np.isnan(jpeg_psnr_at(curve, curve[0]["bpp"] / 2))


def test_script_encode_decode_study_and_bad_input(tmp_path, params):
    image = synthetic_image(32, 32)
    png = write_png(tmp_path / "tiny.png", np.round(image * 255).astype(np.uint8))
    folder = tmp_path / "photos"
    folder.mkdir()
    write_png(folder / "a.png", np.round(image * 255).astype(np.uint8))
    write_png(folder / "b.png", np.round(image[::-1] * 255).astype(np.uint8))
    small = ["--steps", 40, "--qat-steps", 10, "--no-progress", "--depth", 1]
    results = run_scripts({
        "encode": ("compress.py", "encode", png, "-o", tmp_path / "tiny.inrc", "--width", 8, "--bits", 6, *small),
        "study": ("compress.py", "study", "--images", folder, "--widths", 6, 8, "--bits", 8, 6,
                  "--out", tmp_path / "study", *small),
    })
    rc, out, err = results["encode"]
    assert rc == 0, err
    data = (tmp_path / "tiny.inrc").read_bytes()
    assert f"{len(data)} bytes, {8 * len(data) / 1024:.4f} bpp" in out
    rc, _, err = results["study"]
    assert rc == 0, err
    for name in ("results.csv", "results.md", "rd.png", "jpeg.csv", "configs.json"):
        assert (tmp_path / "study" / name).is_file(), name
    with open(tmp_path / "study" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["image"], r["bits"]) for r in rows} == {(i, b) for i in "ab" for b in ("8", "6")}
    assert len(rows) == 8 and all(float(r["bpp"]) > 0 for r in rows)
    # the Markdown table of every file holds the CSV's numbers (bpp to 3 decimals, PSNR to 2)
    table = (tmp_path / "study" / "results.md").read_text().split("## Every file")[1]
    cells = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    header = [c.strip() for c in cells[0]]
    md = [{k: v.strip() for k, v in zip(header, line, strict=True)} for line in cells[1:]]
    assert len(md) == len(rows)
    for r, m in zip(rows, md, strict=True):
        assert abs(float(m["bpp"]) - float(r["bpp"])) <= 6e-4 and abs(float(m["psnr"]) - float(r["psnr"])) <= 6e-3

    corrupt = tmp_path / "corrupt.inrc"
    corrupt.write_bytes(data[:20] + bytes([data[20] ^ 1]) + data[21:])
    (tmp_path / "truncated.inrc").write_bytes(data[:-9])
    (tmp_path / "not_image.png").write_text("hello")
    cases = run_scripts_in_one_process({
        "decode": ("compress.py", "decode", tmp_path / "tiny.inrc", "-o", tmp_path / "tiny.png.out.png"),
        "corrupt": ("compress.py", "decode", corrupt, "-o", tmp_path / "c.png"),
        "truncated": ("compress.py", "decode", tmp_path / "truncated.inrc", "-o", tmp_path / "t.png"),
        "bits": ("compress.py", "encode", png, "-o", tmp_path / "x.inrc", "--bits", 20),
        "image": ("compress.py", "encode", tmp_path / "not_image.png", "-o", tmp_path / "y.inrc"),
        "unwritable": ("compress.py", "encode", png, "-o", tmp_path / "no" / "such" / "z.inrc"),
        "no_folder": ("compress.py", "study", "--images", tmp_path / "missing", "--out", tmp_path / "s2"),
    })
    rc, out, err = cases["decode"]
    assert rc == 0, err
    from PIL import Image

    decoded = np.asarray(Image.open(tmp_path / "tiny.png.out.png"))
    np.testing.assert_array_equal(decoded, decode(data))
    for name in ("corrupt", "truncated", "bits", "image", "unwritable", "no_folder"):
        rc, _, err = cases[name]
        assert rc == 2, (name, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (name, err)
    assert "bit depth" in cases["bits"][2] and "corrupt or truncated" in cases["corrupt"][2]
    for leftover in ("c.png", "t.png", "x.inrc", "y.inrc", "s2"):
        assert not (tmp_path / leftover).exists(), leftover
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files left
