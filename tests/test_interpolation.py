"""Weight interpolation (``inr_utils.applications.interpolation``): the endpoints are exactly the two fits (weights
bit for bit, renders equal), the path is a straight line, the cross-fade is pixel arithmetic; then the script end
to end as a subprocess (GIFs, table, figure) and its one-line errors.
"""

from __future__ import annotations

import json

import imageio.v3 as iio
import jax
import numpy as np
import pytest
from conftest import run_script, run_scripts_in_one_process, synthetic_image

from inr_utils.applications.interpolation import crossfade, interpolate_params, interpolate_weights, render_path
from inr_utils.errors import InputError
from inr_utils.rendering import render
from inr_utils.studies import experiment_config
from inr_utils.sweeps import fit_many, unstack
from inr_utils.tables import read_csv


def tiny_config():
    return experiment_config("ffn", steps=20, size=32, batch_size=256, width=16, depth=1, fourier_features=16,
                             steps_per_call=10)


@pytest.fixture(scope="module")
def pair():
    a = synthetic_image()
    b = np.ascontiguousarray(a[::-1, ::-1, ::-1])
    return a, b, interpolate_weights(a, b, tiny_config(), num_frames=5)


def test_endpoints_are_the_two_fits_exactly(pair):
    _, _, r = pair
    params = [unstack(r.result, i)["params"] for i in (0, 1)]
    for t, expected in ((0.0, params[0]), (1.0, params[1])):
        mixed = interpolate_params(*params, t)
        for x, y in zip(jax.tree.leaves(mixed), jax.tree.leaves(expected), strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # the end frames are the fits' renders (the same weights; rendered as a stack vs one model)
    np.testing.assert_allclose(r.frames[0], r.fits[0], atol=1e-6)
    np.testing.assert_allclose(r.frames[-1], r.fits[1], atol=1e-6)
    # rendered alone, the t = 0 weights give the fit's render bit for bit
    variables = unstack(r.result, 0)
    alone = render(r.result.model.apply, {**variables, "params": interpolate_params(*params, 0.0)}, 32, 32)
    np.testing.assert_array_equal(alone, render(r.result.model.apply, variables, 32, 32))
    assert r.psnr_to_crossfade[0] > 60 and r.psnr_to_crossfade[-1] > 60


def test_the_path_is_a_straight_line(pair):
    _, _, r = pair
    params = [unstack(r.result, i)["params"] for i in (0, 1)]
    half = interpolate_params(*params, 0.5)
    for m, x, y in zip(jax.tree.leaves(half), *(jax.tree.leaves(p) for p in params), strict=True):
        np.testing.assert_allclose(np.asarray(m), 0.5 * (np.asarray(x) + np.asarray(y)), rtol=1e-6, atol=1e-7)
    assert np.array_equal(r.ts, np.linspace(0, 1, 5)) and r.frames.shape == (5, 32, 32, 3)


def test_crossfade_is_pixel_arithmetic():
    a, b = np.zeros((4, 4, 1), np.float32), np.ones((4, 4, 1), np.float32)
    np.testing.assert_allclose(crossfade(a, b, [0.0, 0.25, 1.0])[:, 0, 0, 0], [0.0, 0.25, 1.0])


def test_different_starts_and_sizes_are_refused():
    a = synthetic_image()
    with pytest.raises(InputError, match="same size"):
        interpolate_weights(a, a[:16], tiny_config())
    different = fit_many(tiny_config(), a, seeds=[0, 1], progress=False)  # Fourier matrices from two seeds
    with pytest.raises(InputError, match="same config and seed"):
        render_path(different, [0.5], 8, 8)


def test_script_end_to_end(tmp_path):
    out = tmp_path / "interp"
    rc, stdout, stderr = run_script("interpolate_weights.py", "--size", "32", "--steps", "20", "--width", "16",
                                    "--frames", "5", "--no-progress", "--out", out)
    assert rc == 0, stderr
    for name in ("weights.gif", "crossfade.gif", "figure.png", "results.csv", "results.md", "configs.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    gif = iio.imread(out / "weights.gif", index=None)
    assert gif.shape[:3] == (8, 32, 32)  # 5 frames there, 3 back
    rows = read_csv(out / "results.csv")
    assert [float(r["t"]) for r in rows] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert float(rows[0]["psnr_to_crossfade"]) > 40 and len(json.loads((out / "configs.json").read_text())["runs"]) == 2
    assert str(out) in stderr


def test_bad_input_is_one_line(tmp_path):
    results = run_scripts_in_one_process({
        "one_image": ("interpolate_weights.py", "--images", "camera", "--out", tmp_path / "a"),
        "frames": ("interpolate_weights.py", "--frames", "0", "--out", tmp_path / "b"),
        "missing": ("interpolate_weights.py", "--images", "camera", str(tmp_path / "nope.png"), "--out",
                    tmp_path / "c"),
    })
    for name, message in (("one_image", "needs two images"), ("frames", "must be positive"),
                          ("missing", "does not exist")):
        rc, _, stderr = results[name]
        assert rc == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not any((tmp_path / d).exists() for d in "abc")
