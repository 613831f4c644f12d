"""The classic experiments (``experiments/classic/``): their library code exactly, in this process through the
packages (``inr_utils.tables``, ``images``, ``reports``, ``studies``); then each script once as a subprocess
with tiny settings (32x32 images, 20 steps, few models), checking the files, the table rows and columns and that
the numbers are sane, every flag's help naming its default, and one-line errors for bad input.

The subprocess runs start together in one fixture, two at a time (each pays JAX's start-up); the quick ones
(``--help``, bad input) run one after another in one more subprocess, which pays the start-up once.
"""

from __future__ import annotations

import json
import math
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import run_scripts, run_scripts_in_one_process

from inr_utils.config import FitConfig
from inr_utils.errors import InputError
from inr_utils.images import centre_square, crop_fraction, fit_size, load_named_image, load_source, resize
from inr_utils.reports import make_run_dir, write_configs, write_results
from inr_utils.studies import GRID_COLUMNS, check_presets, experiment_config, fit_and_score, log_spaced_steps
from inr_utils.tables import mean_of, pivot, read_csv

TINY = ["--size", "32", "--steps", "20", "--batch-size", "256", "--no-progress"]
SCRIPTS = ("positional_encoding.py", "architecture.py", "resolution.py", "image_types.py", "layer_shootout.py")


def _check_outputs(out: Path, figures: tuple[str, ...] = ("figure.png",)) -> list[dict[str, str]]:
    """The common files exist; returns the CSV rows. configs.json's configs load as FitConfigs."""
    for name in ("results.csv", "results.md", "configs.json", *figures):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    configs = json.loads((out / "configs.json").read_text())
    assert configs["runs"] and "--steps" in configs["command"]
    for run in configs["runs"]:
        assert FitConfig.from_dict(run["config"]).steps == 20
    return read_csv(out / "results.csv")


def _sane_psnr(text: str) -> float:
    value = float(text)
    assert 5.0 < value < 60.0, value
    return value


# --------------------------------------------------------------------------------------------- library, in process

def test_csv_round_trip(tmp_path):
    rows = [{"name": "relu|pe", "psnr": 31.234567}, {"name": "siren", "psnr": float("nan")}]
    write_results(tmp_path, rows, ["name", "psnr"], "# t\n")
    assert read_csv(tmp_path / "results.csv") == [{"name": "relu|pe", "psnr": "31.2346"},
                                                  {"name": "siren", "psnr": ""}]
    assert (tmp_path / "results.md").read_text() == "# t\n"
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_write_configs_is_json(tmp_path):
    write_configs(tmp_path, "demo", {"size": 32, "out": tmp_path, "scales": (1.0, np.float32(2.0))},
                  [{"config": FitConfig().to_dict()}])
    payload = json.loads((tmp_path / "configs.json").read_text())
    assert payload["experiment"] == "demo" and payload["settings"]["scales"] == [1.0, 2.0]
    assert payload["settings"]["out"] == str(tmp_path) and FitConfig.from_dict(payload["runs"][0]["config"])


def test_pivot_and_mean():
    long = [{"image": "a", "model": "m1", "psnr": 1.0}, {"image": "a", "model": "m2", "psnr": 2.0},
            {"image": "b", "model": "m1", "psnr": 3.0}]
    wide, names = pivot(long, "image", "model", "psnr")
    assert names == ["image", "m1", "m2"]
    assert wide == [{"image": "a", "m1": 1.0, "m2": 2.0}, {"image": "b", "m1": 3.0, "m2": None}]
    assert mean_of([1.0, None, float("nan"), 3.0]) == 2.0
    assert math.isnan(mean_of([None]))


def test_log_spaced_steps():
    assert log_spaced_steps(2000, 10) == [10, 20, 30, 50, 70, 100, 200, 300, 500, 700, 1000, 2000]
    assert log_spaced_steps(20, 10) == [10, 20]
    assert log_spaced_steps(250, 100) == [100, 200, 250]


def test_image_helpers():
    image = np.arange(4 * 6, dtype=np.float32).reshape(4, 6, 1)
    np.testing.assert_allclose(resize(image, 2, 3, "area")[..., 0],
                               image[..., 0].reshape(2, 2, 3, 2).mean(axis=(1, 3)), rtol=1e-6)
    assert centre_square(image).shape == (4, 4, 1)
    np.testing.assert_array_equal(centre_square(image)[..., 0], image[:, 1:5, 0])
    np.testing.assert_array_equal(crop_fraction(image, (0.5, 1.0, 0.0, 0.5)), image[:2, 3:])
    assert crop_fraction(image, (0.0, 0.01, 0.0, 0.01)).shape == (1, 1, 1)
    assert fit_size(np.zeros((40, 20, 3), np.float32), 10).shape == (10, 5, 3)
    with pytest.raises(ValueError, match="unknown resize method"):
        resize(image, 2, 2, "lanczos9")


def test_load_source_names_and_errors(tmp_path):
    label, image = load_source("logo")  # RGBA composited over white, square
    assert label == "logo" and image.shape == (500, 500, 3) and image.max() <= 1.0
    assert load_named_image("camera", 16)[1].shape == (16, 16, 1)
    with pytest.raises(InputError, match="neither an image file nor a scikit-image"):
        load_source("no_such_picture")
    with pytest.raises(InputError, match="does not exist"):
        load_source(str(tmp_path / "missing.png"))


def test_presets_and_run_folder(tmp_path):
    assert check_presets(["siren", "ffn", "siren"], ["ffn", "siren", "relu_pe"]) == ["siren", "ffn"]
    with pytest.raises(InputError, match="unknown model preset"):
        check_presets(["nope"], ["siren"])
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        make_run_dir(tmp_path, "demo")
    assert make_run_dir(tmp_path / "new", "demo").is_dir()


def test_experiment_config_takes_the_presets_training():
    config = experiment_config("siren", steps=20, size=32, batch_size=None, seed=3, width=16, depth=1)
    assert config.lr == 1e-4 and config.batch_size is None and config.checkpoint_every == 0  # siren's lr
    assert (config.steps, config.max_size, config.seed, config.model.width) == (20, 32, 3, 16)
    assert experiment_config("relu_pe", 20, 32, 256).lr == FitConfig().lr
    with pytest.raises(InputError, match="nosuch"):
        experiment_config("siren", 20, 32, 256, nosuch=1)


def test_fit_and_score_scores_its_reconstruction(image):
    config = experiment_config("relu_pe", steps=20, size=32, batch_size=256, width=16, depth=1, num_frequencies=4,
                               steps_per_call=10)
    result = fit_and_score(image, config, curve=True)
    assert result.reconstruction.shape == image.shape and result.curve_steps == [10, 20]
    assert result.psnr == pytest.approx(-10 * np.log10(np.mean((result.reconstruction - image) ** 2)), abs=1e-3)
    assert result.params == 16 * 18 + 16 + 16 * 16 + 16 + 16 * 3 + 3 and result.note == ""
    assert result.metrics()["s_per_step"] > 0


# --------------------------------------------------------------------------------------------- script runs

BAD_INPUT = {
    "unknown_variant": ("positional_encoding.py", ["--variants", "pe"], "unknown variant"),
    "steps_0": ("positional_encoding.py", ["--steps", "0"], "must be positive"),
    "missing_image": ("architecture.py", ["--image", "/nonexistent/x.png"], "does not exist"),
    "bad_crop": ("resolution.py", ["--crop", "0.5", "0.2", "0", "1"], "--crop"),
    "unknown_preset": ("image_types.py", ["--models", "nope"], "unknown model preset"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every script run of this module, started together: name -> (out folder, (rc, stdout, stderr))."""
    root = tmp_path_factory.mktemp("classic")
    (root / "full").mkdir()
    (root / "full" / "keep.txt").write_text("x")
    cases = {
        "pe": ("positional_encoding.py", [*TINY, "--variants", "none", "ffn"]),
        "arch": ("architecture.py", [*TINY[:-1], "--depths", "1", "--widths", "8", "16"]),
        "res": ("resolution.py", [*TINY, "--scales", "0.5", "1", "2"]),
        "types": ("image_types.py", [*TINY, "--models", "siren", "--images", "logo", "grass", "--no-sweep"]),
        "shootout": ("layer_shootout.py", [*TINY, "--models", "siren", "--images", "astronaut", "coffee"]),
        **{f"help_{script}": (script, ["--help"]) for script in SCRIPTS},
        **{name: (script, args) for name, (script, args, _) in BAD_INPUT.items()},
    }
    outs = {name: root / name for name in cases}
    outs["full"] = root / "full"
    commands = {name: (f"classic/{script}", *args, *([] if name.startswith("help_") else ["--out", outs[name]]))
                for name, (script, args) in cases.items()}
    commands["full"] = ("classic/architecture.py", *TINY, "--out", outs["full"])
    quick = {name for name in commands if name.startswith("help_") or name in BAD_INPUT or name == "full"}
    with ThreadPoolExecutor(1) as pool:
        batch = pool.submit(run_scripts_in_one_process, {name: commands[name] for name in quick})
        results = run_scripts({name: command for name, command in commands.items() if name not in quick})
        results.update(batch.result())
    return {name: (outs[name], result) for name, result in results.items()}


def _ok(runs, name) -> tuple[Path, str, str]:
    out, (rc, stdout, stderr) = runs[name]
    assert rc == 0, f"exit {rc}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    return out, stdout, stderr


def _option_helps(text: str) -> list[str]:
    """The help text of each option in argparse's ``--help`` output, joined into one line each."""
    entries: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if re.match(r"^  -", line):
            current = [line]
            entries.append(current)
        elif current is not None and line.startswith("   ") and line.strip():
            current.append(line)
        else:
            current = None
    return [" ".join(" ".join(entry).split()) for entry in entries]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_flag_documents_its_default(runs, script):
    _, stdout, _ = _ok(runs, f"help_{script}")
    helps = [h for h in _option_helps(stdout) if not h.startswith("-h, --help")]
    assert len(helps) >= 6, stdout
    for entry in helps:
        assert "default" in entry, entry


def test_positional_encoding(runs):
    out, stdout, stderr = _ok(runs, "pe")
    assert f"writing to {out}" in stderr and "| variant |" in stdout
    rows = _check_outputs(out)
    assert [r["variant"] for r in rows] == ["no encoding", "Fourier features m=256, σ=20.0"]
    for column in ("variant", "params", "psnr", "ssim", "s_per_step"):
        assert column in rows[0]
    for row in rows:
        _sane_psnr(row["psnr"])
        assert 0 < float(row["ssim"]) <= 1 and float(row["s_per_step"]) > 0 and int(row["params"]) > 1000
    assert int(rows[0]["params"]) < int(rows[1]["params"])  # the Fourier features widen the first layer
    curves = read_csv(out / "curves.csv")
    assert [(c["variant"], c["step"]) for c in curves][:2] == [("no encoding", "10"), ("no encoding", "20")]
    assert len(curves) == 4 and all(5 < float(c["psnr"]) < 60 for c in curves)


def test_architecture_with_progress_bar(runs):
    out, _, stderr = _ok(runs, "arch")
    assert "architecture:" in stderr and "fit" in stderr  # the tqdm bar over fits
    rows = _check_outputs(out)
    assert [(r["depth"], r["width"]) for r in rows] == [("1", "8"), ("1", "16")]
    assert int(rows[0]["params"]) < int(rows[1]["params"])
    for row in rows:
        _sane_psnr(row["psnr"])


def test_resolution(runs):
    out, _, _ = _ok(runs, "res")
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


def test_image_types_one_fit_at_a_time(runs):
    out, stdout, _ = _ok(runs, "types")
    rows = _check_outputs(out)
    assert [(r["image"], r["model"], r["fitted_with"]) for r in rows] == [("logo", "siren", "fit"),
                                                                          ("grass", "siren", "fit")]
    assert set(GRID_COLUMNS) == set(rows[0])
    for row in rows:
        _sane_psnr(row["psnr"])
    assert rows[0]["lr"] == "0.0001"  # the preset's recommended lr
    assert "## PSNR (dB)" in stdout and "| logo |" in stdout and "Hardest overall" in stdout


def test_layer_shootout(runs):
    out, _, stderr = _ok(runs, "shootout")
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


@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_bad_input_is_one_line(runs, name):
    out, (rc, stdout, stderr) = runs[name]
    assert rc == 2 and BAD_INPUT[name][2] in stderr and stderr.count("\n") == 1, stderr
    assert "error" in stderr and stdout == ""
    assert not out.exists()  # nothing written


def test_non_empty_output_folder_is_refused(runs):
    out, (rc, _, stderr) = runs["full"]
    assert rc == 2 and "not empty" in stderr and stderr.count("\n") == 1
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
