"""Spectral bias (inr_utils.applications.spectral_bias): the empirical NTK is symmetric PSD and equals J J^T
computed by vjp/jvp products, a ReLU MLP fits a low frequency before a high one, bad input, and
experiments/spectral_bias.py end to end (tiny) and refusing bad flags."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_script

from inr_utils.applications import spectral_bias as S
from inr_utils.errors import InputError
from inr_utils.tables import read_csv


@pytest.mark.parametrize("name", ["relu", "siren"])
def test_ntk_is_symmetric_psd_and_equals_products(name):
    config = S.spectral_config(name, 2, width=8, depth=1)
    points = S.grid_points((3, 3))
    kernel = S.empirical_ntk(config, points)
    assert kernel.shape == (9, 9)
    np.testing.assert_allclose(kernel, kernel.T, rtol=1e-10, atol=1e-10)
    assert np.linalg.eigvalsh(kernel).min() > -1e-6 * np.abs(kernel).max()
    np.testing.assert_allclose(S.ntk_by_products(config, points), kernel, rtol=1e-4, atol=1e-5 * np.abs(kernel).max())
    spectrum = S.ntk_spectrum(kernel)
    assert spectrum[0] == 1.0 and np.all(np.diff(spectrum) <= 1e-12)


def test_relu_mlp_fits_the_low_frequency_first():
    signal = S.sinusoid_signal(64, [1, 8])
    speed = S.fit_speed(S.spectral_config("relu", 1, steps=300, width=32, depth=2, record_every=20), signal, [1, 8])
    low, high = speed.relative_residual[:, 0], speed.relative_residual[:, 1]
    reached = speed.steps_to(0.2)
    assert reached[0] is not None and (reached[1] is None or reached[1] > reached[0]), reached
    assert low[-1] < 0.5 * high[-1], (low[-1], high[-1])


def test_frequency_response_of_a_stationary_kernel():
    n = 32
    u = (np.arange(n) + 0.5) / n
    # circulant kernel with eigenvalue 1 / (1 + k^2) at k cycles
    cos = [np.cos(2 * np.pi * k * u) for k in range(8)]
    sin = [np.sin(2 * np.pi * k * u) for k in range(8)]
    kernel = sum((np.outer(cos[k], cos[k]) + np.outer(sin[k], sin[k])) / (1 + k ** 2) for k in range(1, 8))
    gains = S.frequency_response(kernel, [1, 3])
    assert gains[1] == pytest.approx((1 / 10) / (1 / 2), rel=1e-6)


def test_bad_input():
    with pytest.raises(InputError, match="frequencies"):
        S.sinusoid_signal(16, [9])
    with pytest.raises(InputError, match="unknown model"):
        S.small_inr("gelu", 1)


def test_script_end_to_end_and_bad_flags(tmp_path):
    out = tmp_path / "sb"
    code, stdout, stderr = run_script("spectral_bias.py", "--models", "relu,ffn_s20", "--points", "32", "--grid-2d",
                                      "4", "--frequencies", "1,6", "--steps", "40", "--width", "16", "--out", out)
    assert code == 0, stderr
    rows = read_csv(out / "results.csv")
    assert [r["model"] for r in rows] == ["relu", "ffn_s20"] and float(rows[0]["gain_1"]) == 1.0
    assert (out / "figure.png").stat().st_size > 0 and (out / "spectra.csv").is_file() and str(out) in stdout
    bad = tmp_path / "bad"
    code, _, stderr = run_script("spectral_bias.py", "--frequencies", "1,40", "--points", "32", "--out", bad)
    assert code == 2 and stderr.strip().count("\n") == 0 and "--frequencies" in stderr
    assert not bad.exists()
