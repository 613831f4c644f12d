"""Restoration (``inr_utils.applications.restoration``) and the training mask of ``fit`` / ``fit_many``: only the
known rows train (hidden values change nothing, bit for bit), bad masks are refused, the noise level, the
super-resolution shapes; then the three scripts end to end as subprocesses with tiny settings, and their one-line
errors for bad input.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import run_scripts, run_scripts_in_one_process, synthetic_image
from PIL import Image

from inr_utils.applications.restoration import (
    TargetPSNR,
    add_noise,
    box_mask,
    denoise,
    downsample,
    hidden_scores,
    image_inputs,
    inpaint,
    load_mask,
    nearest_fill,
    random_mask,
    super_resolve,
)
from inr_utils.errors import InputError
from inr_utils.fitting import fit
from inr_utils.metrics import psnr
from inr_utils.rendering import render
from inr_utils.studies import experiment_config
from inr_utils.sweeps import fit_many, sweep_grid, unstack
from inr_utils.tables import read_csv


def tiny_config(steps: int = 20, lr: float | None = None, batch_size: int | None = 256, **overrides):
    config = experiment_config("ffn", steps=steps, size=32, batch_size=batch_size, width=16, depth=1,
                               fourier_features=16, steps_per_call=10, **overrides)
    return config if lr is None else dataclasses.replace(config, lr=lr)


# --------------------------------------------------------------------------------------------- masks


def test_masks_shapes_and_fractions():
    known = random_mask((32, 32), 0.5, seed=1)
    assert known.dtype == bool and known.shape == (32, 32) and (~known).sum() == 512
    np.testing.assert_array_equal(known, random_mask((32, 32), 0.5, seed=1))
    box = box_mask((32, 32))
    assert (~box).sum() == 8 * 8 and not box[12:20, 12:20].any() and box[:12].all()
    with pytest.raises(InputError, match="strictly between"):
        random_mask((8, 8), 1.0)
    with pytest.raises(InputError, match="X0 X1 Y0 Y1"):
        box_mask((8, 8), (0.5, 0.2, 0.0, 1.0))


def test_only_known_rows_train_bit_for_bit():
    image = synthetic_image()
    known = random_mask(image.shape[:2], 0.5, seed=0)
    changed = np.where(known[..., None], image, 1.0 - image)  # every hidden pixel different
    config = tiny_config()
    a, b = (fit(x, config, progress=False, mask=known) for x in (image, changed))
    for x, y in zip(jax.tree.leaves(a.state.params), jax.tree.leaves(b.state.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    unmasked = fit(changed, config, progress=False)  # without the mask the hidden values do matter
    assert not np.array_equal(np.asarray(jax.tree.leaves(a.state.params)[0]),
                              np.asarray(jax.tree.leaves(unmasked.state.params)[0]))
    # the history's PSNR is over the training rows only
    recon = render(a.model.apply, a.variables, 32, 32)
    train_psnr = float(psnr(recon[known], image[known]))
    assert a.history.column("full_psnr")[-1] == pytest.approx(train_psnr, abs=0.01)


def test_fit_many_mask_matches_fit():
    image = synthetic_image()
    known = box_mask(image.shape[:2])
    config = tiny_config()
    single = fit(image, config, progress=False, mask=known)
    many = fit_many([config], image, progress=False, mask=known)
    for x, y in zip(jax.tree.leaves(single.state.params), jax.tree.leaves(unstack(many, 0)["params"]), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mask, message", [
    (np.ones((16, 32), bool), "shape"),
    (np.full((32, 32), 0.5), "binary"),
    (np.zeros((32, 32), bool), "nothing to train"),
])
def test_bad_masks_are_refused(mask, message):
    with pytest.raises(InputError, match=message):
        fit(synthetic_image(), tiny_config(), progress=False, mask=mask)


def test_mask_files(tmp_path):
    hidden = np.zeros((32, 32), np.uint8)
    hidden[4:10, 4:10] = 255
    Image.fromarray(hidden).save(tmp_path / "ok.png")
    known = load_mask(tmp_path / "ok.png", (32, 32))
    assert (~known).sum() == 36 and not known[4:10, 4:10].any()
    with pytest.raises(InputError, match="is 32x32 pixels but the image is 16x32"):
        load_mask(tmp_path / "ok.png", (32, 16))
    hidden[0, 0] = 128
    Image.fromarray(hidden).save(tmp_path / "gray.png")
    with pytest.raises(InputError, match="not binary"):
        load_mask(tmp_path / "gray.png", (32, 32))


def test_inpaint_scores_and_baselines():
    image = synthetic_image()
    known = random_mask(image.shape[:2], 0.5)
    filled = nearest_fill(image, known)
    np.testing.assert_array_equal(filled[known], image[known])  # known pixels are their own nearest
    assert hidden_scores(image, image, known)["psnr_hidden"] > 100  # a perfect fill
    config = experiment_config("siren", steps=40, size=32, batch_size=256, width=16, depth=1, steps_per_call=10,
                               omega0=10.0)
    result = inpaint(image, known, dataclasses.replace(config, lr=3e-3))
    assert set(result.scores) == {"inr", "biharmonic", "nearest"} and result.inr.shape == image.shape
    # a smooth image: biharmonic is excellent, nearest-neighbour decent; the tiny low-bandwidth SIREN generalises
    # to the hidden pixels of a random mask (as good there as on the known ones), far above a flat grey
    assert result.scores["biharmonic"]["psnr_hidden"] > result.scores["nearest"]["psnr_hidden"] > 25
    grey = hidden_scores(np.full_like(image, 0.5), image, known)["psnr_hidden"]
    assert result.scores["inr"]["psnr_hidden"] > grey + 5
    assert abs(result.scores["inr"]["psnr_hidden"] - result.train_psnr) < 1.5


# --------------------------------------------------------------------------------------------- denoising


def test_noise_level_is_20_db_for_sigma_0_1():
    image = synthetic_image(64, 64)
    noisy = add_noise(image, 0.1, seed=0)
    assert float(psnr(noisy, image)) == pytest.approx(20.0, abs=0.1)
    np.testing.assert_array_equal(noisy, add_noise(image, 0.1, seed=0))
    assert float(psnr(add_noise(image, 0.05, seed=0), image)) == pytest.approx(26.02, abs=0.1)
    with pytest.raises(InputError, match="positive"):
        add_noise(image, 0.0)


def test_denoise_tracks_the_clean_psnr():
    image = synthetic_image()
    configs, _ = sweep_grid(tiny_config(40), fourier_scale=[1.0, 10.0])
    result = denoise(image, configs, sigma=0.1, eval_every=10)
    assert result.psnr.shape == (4, 2) and list(result.steps) == [10, 20, 30, 40]
    # the last tracked PSNR is the final render's
    for i in range(2):
        assert result.psnr[-1, i] == pytest.approx(result.final_scores[i]["psnr"], abs=0.01)
        assert result.best_scores[i]["psnr"] == pytest.approx(result.psnr[:, i].max(), abs=0.01)


def test_target_psnr_of_a_single_fit():
    image = synthetic_image()
    config = tiny_config()
    result = fit(image, config, progress=False)
    tracker = TargetPSNR(result.model.apply, image, every=10)
    fit(image, config, progress=False, callbacks=[tracker])
    recon = np.clip(render(result.model.apply, result.variables, 32, 32), 0, 1)
    assert tracker.steps == [10, 20] and tracker.psnr[-1, 0] == pytest.approx(float(psnr(recon, image)), abs=1e-3)


# --------------------------------------------------------------------------------------------- super-resolution


def test_downsample_by_area_and_crop():
    image = synthetic_image(34, 33)
    reference, small = downsample(image, 4)
    assert reference.shape == (32, 32, 3) and small.shape == (8, 8, 3)
    np.testing.assert_allclose(small[1, 2], image[4:8, 8:12].mean(axis=(0, 1)), rtol=1e-6)
    assert downsample(image, 4, "bicubic")[1].shape == (8, 8, 3)
    with pytest.raises(InputError, match="unknown downsampling"):
        downsample(image, 4, "lanczos")
    with pytest.raises(InputError, match="smaller than the factor"):
        downsample(image[:3], 4)


def test_super_resolve_shapes_and_training_size():
    image = synthetic_image()
    configs, _ = sweep_grid(tiny_config(40, batch_size=None), fourier_scale=[2.0, 5.0])
    result = super_resolve(image, configs, factor=4)
    assert result.small.shape == (8, 8, 3) and result.renders.shape == (2, 32, 32, 3)
    assert set(result.scores) == {"inr_0", "inr_1", "bicubic", "nearest"}
    # rendered at the training size, the INR reproduces its fit: the sweep's own final PSNR on the small image
    many = fit_many(configs, result.small, progress=False)
    np.testing.assert_allclose(result.train_psnr, many.psnr, atol=0.01)
    assert result.scores["bicubic"]["psnr"] > result.scores["nearest"]["psnr"]


def test_image_inputs_folder(tmp_path):
    for name in ("b", "a"):
        Image.fromarray((synthetic_image() * 255).astype(np.uint8)).save(tmp_path / f"{name}.png")
    (tmp_path / "notes.txt").write_text("x")
    assert [label for label, _ in image_inputs([str(tmp_path), "camera"], 16)] == ["a", "b", "camera"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no image"):
        image_inputs([str(tmp_path / "empty")], 16)


# --------------------------------------------------------------------------------------------- scripts

TINY = ["--size", "32", "--steps", "20", "--width", "16", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("restoration")
    mask = np.zeros((32, 32), np.uint8)
    mask[8:16, 8:16] = 255
    Image.fromarray(mask).save(root / "mask.png")
    Image.fromarray(mask[:16]).save(root / "small_mask.png")
    cases = {
        "inpaint": ("inpaint.py", *TINY, "--mask", root / "mask.png", "--out", root / "inpaint"),
        "denoise": ("denoise.py", *TINY, "--scales", "2", "8", "--eval-every", "10", "--out", root / "denoise"),
        "sr": ("super_resolve.py", *TINY, "--scales", "2", "4", "--out", root / "sr"),
    }
    bad = {
        "bad_mask": ("inpaint.py", *TINY, "--mask", root / "small_mask.png", "--out", root / "bad_mask"),
        "bad_sigma": ("denoise.py", *TINY, "--sigma", "-1", "--out", root / "bad_sigma"),
        "bad_factor": ("super_resolve.py", *TINY, "--factor", "64", "--out", root / "bad_factor"),
    }
    results = run_scripts(cases)
    results.update(run_scripts_in_one_process(bad))
    return root, results


def _ok(runs, name) -> Path:
    root, results = runs
    rc, stdout, stderr = results[name]
    assert rc == 0, f"exit {rc}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    return root / {"inpaint": "inpaint", "denoise": "denoise", "sr": "sr"}[name]


def _files(out: Path, *names: str) -> None:
    for name in ("results.csv", "results.md", "configs.json", "figure.png", *names):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert json.loads((out / "configs.json").read_text())["runs"]


def test_inpaint_script(runs):
    out = _ok(runs, "inpaint")
    _files(out)
    rows = read_csv(out / "results.csv")
    assert [r["mask"] for r in rows] == ["random", "box", "mask.png"]
    for row in rows:
        assert 5 < float(row["psnr_inr"]) < 60 and 5 < float(row["psnr_biharmonic"]) < 80


def test_denoise_script(runs):
    out = _ok(runs, "denoise")
    _files(out, "curves.csv")
    rows = read_csv(out / "results.csv")
    assert [float(r["fourier_scale"]) for r in rows] == [2.0, 8.0]
    assert all(abs(float(r["psnr_noisy"]) - 20.0) < 0.3 for r in rows)


def test_super_resolve_script(runs):
    out = _ok(runs, "sr")
    _files(out)
    methods = [r["method"] for r in read_csv(out / "results.csv")]
    assert methods == ["INR scale 2", "INR scale 4", "bicubic", "nearest"]


@pytest.mark.parametrize("name, message", [("bad_mask", "give a mask of the image's size"),
                                           ("bad_sigma", "must be positive"),
                                           ("bad_factor", "smaller than the factor")])
def test_bad_input_is_one_line(runs, name, message):
    root, results = runs
    rc, _, stderr = results[name]
    assert rc == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not (root / name).exists() or not any((root / name).iterdir())
