"""CT reconstruction (inr_utils.applications.tomography): the Radon operator's adjoint, its agreement with
scikit-image, the ray-sampled forward model against the grid one, an INR beating FBP at few views, bad input, and
experiments/ct_reconstruction.py end to end (tiny) and refusing bad flags."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_script

from inr_utils.applications import tomography as T
from inr_utils.errors import InputError
from inr_utils.tables import read_csv


def _blob(size: int) -> np.ndarray:
    coords = T.pixel_grid(size)
    return (np.exp(-((coords[..., 0] - 0.2) ** 2 + (coords[..., 1] + 0.1) ** 2) / 0.1) * T.disk_mask(size)
            ).astype(np.float32)


def test_radon_adjoint_matches_dense_transpose():
    size, angles = 8, T.angles_degrees(5)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((size, size)).astype(np.float32)
    y = rng.standard_normal((size, 5)).astype(np.float32)
    ax = T.radon(x, angles)
    aty = T.back_project(y, angles, size)
    assert float(jnp.vdot(ax, y)) == pytest.approx(float(jnp.vdot(x, aty)), rel=1e-5)
    dense = np.asarray(jax.jacfwd(lambda im: T.radon(im, angles))(jnp.zeros((size, size)))).reshape(size * 5, -1)
    np.testing.assert_allclose(np.asarray(aty).reshape(-1), dense.T @ y.reshape(-1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ax).reshape(-1), dense @ x.reshape(-1), rtol=1e-5, atol=1e-5)


def test_radon_agrees_with_skimage():
    from skimage.transform import radon

    image, angles = _blob(32), T.angles_degrees(10)
    ours = np.asarray(T.radon(image, angles))
    ref = radon(image.astype(np.float64), theta=angles.astype(np.float64), circle=True)
    assert ours.shape == ref.shape == (32, 10)
    assert np.abs(ours - ref).max() < 1e-3 * np.abs(ref).max()


def test_ray_sampled_forward_agrees_with_grid():
    size, angles = 32, T.angles_degrees(6)

    def field(x):  # a smooth blob, the continuous version of _blob
        return jnp.exp(-((x[..., 0] - 0.2) ** 2 + (x[..., 1] + 0.1) ** 2) / 0.1)[..., None]

    grid_sino = np.asarray(T.field_sinogram(field, size, angles, "grid"))
    ray_sino = np.asarray(T.field_sinogram(field, size, angles, "rays", samples_per_pixel=2))
    assert np.abs(grid_sino - ray_sino).max() < 0.03 * np.abs(grid_sino).max()


def test_inr_fit_reduces_the_sinogram_loss():
    phantom = T.shepp_logan(32)
    result = T.reconstruct_ct(phantom, num_angles=8, config=T.ct_config(steps=200, width=64))
    assert result.sinogram_loss[-1] < 0.01 * result.sinogram_loss[0]
    assert result.scores["inr"]["psnr"] > 18.0, result.scores  # a blank disk scores ~12 dB


def test_bad_input():
    with pytest.raises(InputError, match="square"):
        T.reconstruct_ct(np.zeros((16, 20), np.float32))
    with pytest.raises(InputError, match="forward model"):
        T.reconstruct_ct(np.zeros((16, 16), np.float32), forward="cone")
    with pytest.raises(InputError, match="angle"):
        T.angles_degrees(0)


def test_script_end_to_end_and_bad_flags(tmp_path):
    out = tmp_path / "ct"
    code, stdout, stderr = run_script("ct_reconstruction.py", "--size", "24", "--angles", "6", "--steps", "20",
                                      "--width", "32", "--out", out)
    assert code == 0, stderr
    rows = read_csv(out / "results.csv")
    assert [r["method"] for r in rows] == ["fbp", "sart", "inr"]
    assert all(5 < float(r["psnr"]) < 60 for r in rows)
    assert (out / "figure.png").stat().st_size > 0 and str(out) in stdout
    bad = tmp_path / "bad"
    code, _, stderr = run_script("ct_reconstruction.py", "--images", tmp_path / "missing", "--out", bad)
    assert code == 2 and stderr.strip().count("\n") == 0 and "not a folder" in stderr
    assert not bad.exists()
