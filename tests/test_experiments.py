"""The classic experiments (``experiments/classic/``): table and image helpers exactly, then each script once
with tiny settings (32x32 images, 20 steps, few models), checking the files, the table rows and columns and
that the numbers are sane; plus one-line errors for bad input.

The script runs happen in this process (the command-line code path without paying JAX's start-up five times);
one bad-input run goes through a real subprocess to check the scripts' import set-up.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, load_script, run_script, run_script_in_process

from inr_utils.config import FitConfig
from inr_utils.errors import InputError

CLASSIC = REPO_ROOT / "experiments" / "classic"
TINY = ["--size", "32", "--steps", "20", "--batch-size", "256", "--no-progress"]
SCRIPTS = ("positional_encoding.py", "architecture.py", "resolution.py", "image_types.py", "layer_shootout.py")


sys.path[:0] = [str(CLASSIC), str(CLASSIC.parent)]  # as the scripts do: they import these two folders' modules
import classic_common as cc  # noqa: E402


def _run(script: str, *args) -> tuple[int, str, str]:
    """Runs ``experiments/classic/<script>`` in this process; returns (exit code, stdout, stderr)."""
    return run_script_in_process(f"classic/{script}", *args)


def _ok(result: tuple[int, str, str]) -> tuple[int, str, str]:
    rc, out, err = result
    assert rc == 0, f"exit {rc}\nstdout:\n{out}\nstderr:\n{err}"
    return result


def _check_outputs(out: Path, figures: tuple[str, ...] = ("figure.png",)) -> list[dict[str, str]]:
    """The common files exist; returns the CSV rows. configs.json's configs load as FitConfigs."""
    for name in ("results.csv", "results.md", "configs.json", *figures):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    configs = json.loads((out / "configs.json").read_text())
    assert configs["runs"] and "--steps" in configs["command"]
    for run in configs["runs"]:
        assert FitConfig.from_dict(run["config"]).steps == 20
    return cc.read_csv(out / "results.csv")


def _sane_psnr(text: str) -> float:
    value = float(text)
    assert 5.0 < value < 60.0, value
    return value


# --------------------------------------------------------------------------------------------- table helpers

def test_csv_round_trip(tmp_path):
    rows = [{"name": "relu|pe", "psnr": 31.234567}, {"name": "siren", "psnr": float("nan")}]
    cc.write_results(tmp_path, rows, ["name", "psnr"], "# t\n")
    assert cc.read_csv(tmp_path / "results.csv") == [{"name": "relu|pe", "psnr": "31.2346"},
                                                     {"name": "siren", "psnr": ""}]
    assert (tmp_path / "results.md").read_text() == "# t\n"
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_pivot_and_mean():
    long = [{"image": "a", "model": "m1", "psnr": 1.0}, {"image": "a", "model": "m2", "psnr": 2.0},
            {"image": "b", "model": "m1", "psnr": 3.0}]
    wide, names = cc.pivot(long, "image", "model", "psnr")
    assert names == ["image", "m1", "m2"]
    assert wide == [{"image": "a", "m1": 1.0, "m2": 2.0}, {"image": "b", "m1": 3.0, "m2": None}]
    assert cc.mean_of([1.0, None, float("nan"), 3.0]) == 2.0
    assert math.isnan(cc.mean_of([None]))


def test_log_spaced_steps():
    assert cc.log_spaced_steps(2000, 10) == [10, 20, 30, 50, 70, 100, 200, 300, 500, 700, 1000, 2000]
    assert cc.log_spaced_steps(20, 10) == [10, 20]
    assert cc.log_spaced_steps(250, 100) == [100, 200, 250]


def test_image_helpers():
    image = np.arange(4 * 6, dtype=np.float32).reshape(4, 6, 1)
    np.testing.assert_allclose(cc.resize(image, 2, 3, "area")[..., 0],
                               image[..., 0].reshape(2, 2, 3, 2).mean(axis=(1, 3)), rtol=1e-6)
    assert cc.centre_square(image).shape == (4, 4, 1)
    np.testing.assert_array_equal(cc.centre_square(image)[..., 0], image[:, 1:5, 0])
    np.testing.assert_array_equal(cc.crop_fraction(image, (0.5, 1.0, 0.0, 0.5)), image[:2, 3:])
    assert cc.crop_fraction(image, (0.0, 0.01, 0.0, 0.01)).shape == (1, 1, 1)
    assert cc.fit_size(np.zeros((40, 20, 3), np.float32), 10).shape == (10, 5, 3)
    with pytest.raises(ValueError, match="unknown resize method"):
        cc.resize(image, 2, 2, "lanczos9")


def test_load_source_names_and_errors(tmp_path):
    label, image = cc.load_source("logo")  # RGBA composited over white, square
    assert label == "logo" and image.shape == (500, 500, 3) and image.max() <= 1.0
    assert cc.load_experiment_image("camera", 16)[1].shape == (16, 16, 1)
    with pytest.raises(InputError, match="neither an image file nor a scikit-image"):
        cc.load_source("no_such_picture")
    with pytest.raises(InputError, match="does not exist"):
        cc.load_source(str(tmp_path / "missing.png"))


def test_every_flag_documents_its_default():
    for script in SCRIPTS:
        parser = load_script(f"classic/{script}").build_parser()
        for action in parser._actions:
            if action.dest != "help":
                assert action.help and "default" in action.help, (script, action.dest)


# --------------------------------------------------------------------------------------------- script runs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("classic")


def test_positional_encoding_variants():
    pe = load_script("classic/positional_encoding.py")
    assert pe.parse_variant("pe15") == pe.Variant("pe15", "PE L=15", "relu_pe", {"num_frequencies": 15})
    assert pe.parse_variant("none").overrides == {"num_frequencies": 0}
    assert pe.parse_variant("ffn").label == "Fourier features m=256, σ=10.0"
    with pytest.raises(InputError, match="unknown variant"):
        pe.parse_variant("pe")


def test_positional_encoding(workdir):
    out = workdir / "pe"
    _, stdout, stderr = _ok(_run("positional_encoding.py", *TINY, "--variants", "none", "ffn", "--out", out))
    assert f"writing to {out}" in stderr and "| variant |" in stdout
    rows = _check_outputs(out)
    assert [r["variant"] for r in rows] == ["no encoding", "Fourier features m=256, σ=10.0"]
    for column in ("variant", "params", "psnr", "ssim", "s_per_step"):
        assert column in rows[0]
    for row in rows:
        _sane_psnr(row["psnr"])
        assert 0 < float(row["ssim"]) <= 1 and float(row["s_per_step"]) > 0 and int(row["params"]) > 1000
    assert int(rows[0]["params"]) < int(rows[1]["params"])  # the Fourier features widen the first layer
    curves = cc.read_csv(out / "curves.csv")
    assert [(c["variant"], c["step"]) for c in curves][:2] == [("no encoding", "10"), ("no encoding", "20")]
    assert len(curves) == 4 and all(5 < float(c["psnr"]) < 60 for c in curves)


def test_architecture_with_progress_bar(workdir):
    out = workdir / "arch"
    _, _, stderr = _ok(_run("architecture.py", *TINY[:-1], "--depths", "1", "--widths", "8", "16", "--out", out))
    assert "architecture:" in stderr and "fit" in stderr  # the tqdm bar over fits
    rows = _check_outputs(out)
    assert [(r["depth"], r["width"]) for r in rows] == [("1", "8"), ("1", "16")]
    assert int(rows[0]["params"]) < int(rows[1]["params"])
    for row in rows:
        _sane_psnr(row["psnr"])


def test_resolution(workdir):
    out = workdir / "res"
    _ok(_run("resolution.py", *TINY, "--scales", "0.5", "1", "2", "--out", out))
    rows = _check_outputs(out)
    assert [(r["width"], r["role"]) for r in rows] == [("16", "downsample"), ("32", "training size"),
                                                       ("64", "upsample")]
    for row in rows:
        assert float(row["render_s"]) > 0
        _sane_psnr(row["psnr_inr"])  # astronaut's 512x512 source is the reference at 64
        _sane_psnr(row["psnr_inr_vs_bicubic"])
    assert rows[1]["psnr_bicubic"] == "" and float(rows[0]["psnr_bicubic"]) > 20
    for name in ("render_16x16.png", "render_64x64.png", "bicubic_64x64.png"):
        assert (out / name).is_file()


def test_image_types_one_fit_at_a_time(workdir):
    out = workdir / "types"
    _, stdout, _ = _ok(_run("image_types.py", *TINY, "--models", "siren", "--images", "logo", "grass",
                            "--no-sweep", "--out", out))
    rows = _check_outputs(out)
    assert [(r["image"], r["model"], r["fitted_with"]) for r in rows] == [("logo", "siren", "fit"),
                                                                          ("grass", "siren", "fit")]
    assert set(cc.GRID_COLUMNS) == set(rows[0])
    for row in rows:
        _sane_psnr(row["psnr"])
    assert rows[0]["lr"] == "0.0001"  # the preset's recommended lr
    assert "## PSNR (dB)" in stdout and "| logo |" in stdout and "Hardest overall" in stdout


def test_layer_shootout(workdir):
    out = workdir / "shootout"
    _, _, stderr = _ok(_run("layer_shootout.py", *TINY, "--models", "siren", "--images", "astronaut", "coffee",
                            "--out", out))
    rows = _check_outputs(out, ("figure.png", "renders.png"))
    assert [(r["model"], r["image"]) for r in rows] == [("siren", "astronaut"), ("siren", "coffee")]
    assert "siren: 198,915 parameters" in stderr
    for row in rows:
        _sane_psnr(row["psnr"])
        assert float(row["s_per_step"]) > 0
        assert row["fitted_with"] == "fit_many x2"  # the two equal-size images are fitted at once
    text = (out / "results.md").read_text()
    assert "mean PSNR (dB)" in text and "| siren | 198,915 | 0.0001 |" in text


# --------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("script", "args", "message"), [
    ("positional_encoding.py", ["--variants", "pe"], "unknown variant"),
    ("positional_encoding.py", ["--steps", "0"], "must be positive"),
    ("architecture.py", ["--image", "/nonexistent/x.png"], "does not exist"),
    ("resolution.py", ["--crop", "0.5", "0.2", "0", "1"], "--crop"),
    ("image_types.py", ["--models", "nope"], "unknown model preset"),
    ("layer_shootout.py", ["--images", "not_an_image"], "neither an image file"),
])
def test_bad_input_is_one_line(script, args, message, tmp_path):
    rc, stdout, stderr = _run(script, *args, "--out", tmp_path / "out")
    assert rc == 2 and message in stderr and stderr.count("\n") == 1, stderr
    assert not (tmp_path / "out").exists()  # nothing written


def test_non_empty_output_folder_is_refused(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    rc, _, stderr = _run("architecture.py", *TINY, "--out", tmp_path)
    assert rc == 2 and "not empty" in stderr and stderr.count("\n") == 1


def test_command_line_bad_input_subprocess(tmp_path):
    rc, stdout, stderr = run_script("classic/image_types.py", "--images", "nope_image", "--out", tmp_path / "o",
                                    timeout=120)
    assert rc == 2 and stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
