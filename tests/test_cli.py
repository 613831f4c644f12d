"""The command-line scripts, run as subprocesses: outputs, reproducibility, resume, rendering, Ctrl-C, damaged
checkpoints, and one-line errors (exit 2) for every kind of bad input; the flag parsing they share
(``inr_utils.cli``) in this process.

Each run costs several seconds of JAX start-up and compilation, so one good run is shared (module fixtures)
and the quick bad-input runs share one subprocess; input checks done by library functions are tested in
this process instead.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import interrupt_fit_image, run_script, run_scripts_in_one_process
from PIL import Image

from inr_utils.cli import (
    OneLineArgumentParser,
    add_model_flags,
    add_run_folder_flags,
    add_training_flags,
    check_run_flags,
    config_from_flags,
    finish_training_command,
    scalar,
)
from inr_utils.config import FitConfig
from inr_utils.errors import InputError
from inr_utils.fit_runs import prepare_output_dir

# A tiny run: 24x24 image (32x32 downscaled), 32-wide relu_pe, 20 steps in chunks of 10, constant lr so that a
# run extended with --resume equals one planned that long; checkpoints at steps 10 and 20.
TINY = ["--model", "relu_pe", "--num-frequencies", "4", "--width", "32", "--depth", "1", "--max-size", "24",
        "--batch-size", "256", "--lr", "3e-3", "--lr-schedule", "constant", "--steps-per-call", "10",
        "--eval-every", "10", "--checkpoint-every", "10", "--no-progress"]
OUTPUT_FILES = ("reconstruction.png", "render_2x.png", "render_4x.png", "summary.png", "metrics.json",
                "history.csv", "config.json")
METRIC_KEYS = {"psnr", "ssim", "ssim_skimage", "steps", "wall_s", "compile_s", "params"}


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def _history(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _ok(result):
    rc, out, err = result
    assert rc == 0, f"exit {rc}\nstdout:\n{out}\nstderr:\n{err}"
    return result


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def run20(workdir, tiny_png):
    """The shared good run: 20 steps."""
    out = workdir / "run20"
    result = _ok(run_script("fit_image.py", "--image", tiny_png, *TINY, "--steps", "20", "--out", out))
    return out, result


@pytest.fixture(scope="module")
def run40(workdir, run20):
    """An uninterrupted 40-step run started from run20's config.json (--config plus an explicit --steps)."""
    out = workdir / "run40"
    _ok(run_script("fit_image.py", "--config", run20[0] / "config.json", "--steps", "40", "--no-progress",
                   "--eval-every", "10", "--out", out))
    return out


# ------------------------------------------------------------------------------------------ a good run


def test_run_writes_every_output(run20):
    out, (rc, stdout, stderr) = run20
    for name in OUTPUT_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert _png(out / "reconstruction.png").shape == (24, 24, 3)
    assert _png(out / "render_2x.png").shape == (48, 48, 3)
    assert _png(out / "render_4x.png").shape == (96, 96, 3)
    assert _png(out / "summary.png").ndim == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert metrics["steps"] == 20 and metrics["image_size"] == [24, 24] and metrics["channels"] == 3
    # 4 octaves: (2 + 16) * 32 + 32 + 32 * 32 + 32 + 32 * 3 + 3
    assert metrics["params"] == 18 * 32 + 32 + 32 * 32 + 32 + 32 * 3 + 3
    assert 0 < metrics["psnr"] < 60 and -1 <= metrics["ssim"] <= 1 and -1 <= metrics["ssim_skimage"] <= 1
    assert metrics["wall_s"] >= metrics["compile_s"] > 0
    assert json.loads(stdout.strip().splitlines()[-1]) == metrics  # the metrics are also printed
    rows = _history(out / "history.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 21))
    assert rows[9]["full_psnr"] and rows[19]["full_psnr"] and not rows[0]["full_psnr"]  # every 10 steps
    assert abs(float(rows[19]["full_psnr"]) - metrics["psnr_unclipped"]) < 0.05
    config = json.loads((out / "config.json").read_text())
    assert config["steps"] == 20 and config["seed"] == 0 and config["lr"] == 3e-3
    assert config["model"]["model"] == "relu_pe" and config["model"]["width"] == 32
    assert config["model"]["encoding_options"]["num_frequencies"] == 4 and config["model"]["out_dim"] == 3
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["10", "20"]
    assert "Traceback" not in stderr


def test_written_files_follow_the_umask(run20):
    """PNGs too (they were private, 0600, from mkstemp): every file of a run has the mode of a normal file."""
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.relative_to(run20[0]).as_posix(): p.stat().st_mode & 0o777 for p in run20[0].rglob("*") if p.is_file()}
    assert "reconstruction.png" in modes and "summary.png" in modes
    assert {name for name, mode in modes.items() if mode != 0o666 & ~umask} == set()


def test_config_rerun_reproduces(run20, run40):
    """Same seed, same config -> the same steps: the first 20 losses of the 40-step run equal run20's."""
    first, longer = _history(run20[0] / "history.csv"), _history(run40 / "history.csv")
    assert len(longer) == 40
    assert [r["loss"] for r in longer[:20]] == [r["loss"] for r in first]
    assert [r["full_psnr"] for r in longer[:10]] == [r["full_psnr"] for r in first[:10]]
    config20 = json.loads((run20[0] / "config.json").read_text())
    config40 = json.loads((run40 / "config.json").read_text())
    assert {**config20, "steps": 40} == config40


def test_resume_equals_uninterrupted(workdir, run20, run40):
    resumed = workdir / "resumed"
    shutil.copytree(run20[0], resumed)
    rc, stdout, stderr = _ok(run_script("fit_image.py", "--resume", resumed, "--steps", "40", "--no-progress",
                                        "--eval-every", "10"))
    metrics = json.loads((resumed / "metrics.json").read_text())
    reference = json.loads((run40 / "metrics.json").read_text())
    assert metrics["steps"] == 40
    assert metrics["psnr"] == pytest.approx(reference["psnr"], abs=1e-3)
    assert metrics["ssim"] == pytest.approx(reference["ssim"], abs=1e-3)
    rows = _history(resumed / "history.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 41))
    ref_rows = _history(run40 / "history.csv")
    np.testing.assert_allclose([float(r["loss"]) for r in rows], [float(r["loss"]) for r in ref_rows], rtol=1e-5)
    np.testing.assert_array_equal(_png(resumed / "reconstruction.png").astype(int),
                                  _png(run40 / "reconstruction.png").astype(int))
    assert "40" in {p.name for p in (resumed / "checkpoints").iterdir()}
    assert json.loads((resumed / "config.json").read_text())["steps"] == 40


def test_render_non_square_default_out(run20):
    out = run20[0]
    rc, stdout, stderr = _ok(run_script("render.py", out, "--height", "20", "--width", "30",
                                        "--chunk-pixels", "100"))
    png = out / "render_20x30.png"
    assert _png(png).shape == (20, 30, 3)
    info = json.loads(stdout.strip().splitlines()[-1])
    assert info["height"] == 20 and info["width"] == 30 and info["step"] == 20 and Path(info["out"]) == png


def test_render_region_is_crop_of_reconstruction(run20, workdir):
    target = workdir / "zoom.png"
    _ok(run_script("render.py", run20[0] / "checkpoints", "--height", "12", "--width", "12",
                   "--region", "-1", "0", "-1", "0", "--out", target))
    zoom = _png(target).astype(int)
    assert zoom.shape == (12, 12, 3)
    # the top-left quadrant at half the resolution hits exactly the training pixels of that quadrant
    assert np.abs(zoom - _png(run20[0] / "reconstruction.png")[:12, :12].astype(int)).max() <= 1


# ------------------------------------------------------------------------------------------ divergence, Ctrl-C


def test_divergence_exits_3_and_keeps_checkpoint(workdir, tiny_png):
    out = workdir / "diverged"
    rc, stdout, stderr = run_script("fit_image.py", "--image", tiny_png, *TINY, "--steps", "20", "--lr", "1e20",
                                    "--out", out)
    assert rc == 3, stderr
    assert "Traceback" not in stderr
    error_lines = [line for line in stderr.splitlines() if line.startswith("error")]
    assert len(error_lines) == 1 and "diverged" in error_lines[0] and "--lr" in error_lines[0]
    assert (out / "checkpoints" / "0").is_dir()  # the last good state: the initial one
    assert (out / "config.json").is_file()
    assert not (out / "metrics.json").exists()


def test_ctrl_c_saves_checkpoint_and_resumes(workdir, tiny_png):
    """SIGINT while fitting: exit 130, a checkpoint of a whole number of chunks, and --resume continues.

    ``--checkpoint-every 0`` so that the only checkpoint is the one written on interruption.
    """
    out = workdir / "interrupted"
    rc, stderr = interrupt_fit_image(["--image", tiny_png, *[a for a in TINY if a != "--no-progress"], "--steps",
                                      "1000000", "--steps-per-call", "20", "--checkpoint-every", "0", "--out", out],
                                     signal.SIGINT, min_step=100)
    assert rc == 130, stderr
    assert "Traceback" not in stderr
    match = re.search(r"interrupted at step (\d+)", stderr)
    assert match and "--resume" in stderr
    step = int(match.group(1))
    assert step >= 100 and step % 20 == 0  # a whole number of chunks
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [str(step)]
    rows = [int(r["step"]) for r in _history(out / "history.csv")]
    assert rows == list(range(1, step + 1))  # history saw every chunk of the checkpointed state
    rc, stdout, stderr = _ok(run_script("fit_image.py", "--resume", out, "--steps", str(step + 20),
                                        "--no-progress"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == step + 20
    rows = [int(r["step"]) for r in _history(out / "history.csv")]
    assert rows[-20:] == list(range(step + 1, step + 21)) and rows == sorted(set(rows))


# ------------------------------------------------------------------------------------------ damaged checkpoints


def _damage(step_dir: Path) -> None:
    """Truncates every data file of a checkpoint's state to 10 bytes, as a full disk or a cut copy would."""
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files
    for path in files:
        with open(path, "r+b") as f:
            f.truncate(10)


def test_resume_falls_back_to_the_newest_intact_checkpoint(workdir, run20):
    run = workdir / "damaged_newest"
    shutil.copytree(run20[0], run)
    _damage(run / "checkpoints" / "20")
    rc, stdout, stderr = _ok(run_script("fit_image.py", "--resume", run, "--steps", "30", "--no-progress"))
    warnings = [line for line in stderr.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and str(run / "checkpoints") in warnings[0] and "step 20" in warnings[0], stderr
    assert "damaged" in warnings[0] and "older checkpoint of step 10" in warnings[0]
    assert "Traceback" not in stderr and "Event loop" not in stderr
    assert json.loads((run / "metrics.json").read_text())["steps"] == 30
    assert [int(r["step"]) for r in _history(run / "history.csv")] == list(range(1, 31))  # 11..20 retrained
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["20", "30"]  # the damaged 20 replaced


# ------------------------------------------------------------------------------------------ bad input


def _bad_cases(workdir: Path, tiny_png: Path, run20: Path) -> dict[str, list]:
    files = workdir / "bad_inputs"
    files.mkdir()
    for name in ("done_run", "done_run_2", "damaged_run", "damaged_run_2"):
        shutil.copytree(run20, files / name)
    for name in ("damaged_run", "damaged_run_2"):
        for step in ("10", "20"):
            _damage(files / name / "checkpoints" / step)
    (files / "a_dir").mkdir()
    (files / "a_file").write_text("x")
    (files / "many.yaml").write_text("model: relu_pe\nsteps: \"many\"\n")
    image = ["--image", str(tiny_png)]
    fit = ["fit_image.py", *TINY, "--steps", "10"]
    siren = ["fit_image.py", *image, "--model", "siren", "--width", "8", "--depth", "1", "--max-size", "8", "--steps",
             "10", "--no-progress"]
    return {
        "missing_file": [*fit, "--image", files / "nope.png"],
        "unwritable_out": [*fit, *image, "--out", "/proc/nonexistent/run"],
        "out_not_empty": [*fit, *image, "--out", run20],
        "eval_every_0": [*fit, *image, "--eval-every", "0"],
        "omega0_text": [*siren, "--layer-option", "omega0=abc", "--out", files / "omega0_text"],
        "learnable_maybe": [*siren, "--layer-option", "learnable=maybe", "--out", files / "learnable_maybe"],
        "config_steps_text": ["fit_image.py", "--config", files / "many.yaml", "--out", files / "from_yaml"],
        "resume_already_done": ["fit_image.py", "--resume", files / "done_run", "--steps", "20", "--no-progress"],
        "resume_other_out": ["fit_image.py", "--resume", files / "done_run", "--out", files / "elsewhere"],
        "resume_changed_width": ["fit_image.py", "--resume", files / "done_run_2", "--steps", "30", "--width", "64",
                                 "--no-progress"],
        "resume_damaged": ["fit_image.py", "--resume", files / "damaged_run", "--steps", "30", "--no-progress"],
        "render_missing_checkpoint": ["render.py", files / "no_such_run", "--height", "8", "--width", "8"],
        "render_zero_size": ["render.py", run20, "--height", "0", "--width", "8"],
        "render_empty_region": ["render.py", run20, "--height", "8", "--width", "8", "--region", "0", "0", "-1", "1"],
        "render_unwritable_out": ["render.py", run20, "--height", "8", "--width", "8", "--out",
                                  files / "a_file" / "x.png"],
        "render_damaged": ["render.py", files / "damaged_run_2", "--height", "8", "--width", "8"],
        "sweep_cifar_missing": ["sweep.py", "--cifar", files / "no_cifar", "--out", files / "sweep_out"],
    }


@pytest.fixture(scope="module")
def bad_runs(workdir, tiny_png, run20):
    """Every bad-input case, one after another in one subprocess (each as ``__main__`` with its own argv, output and
    exit code); name -> (args, (rc, stdout, stderr)), and run20's files before them. At least one case of every kind
    (image, --out, flag, config file, resume, render) runs here; the checks done by library functions (flag values,
    usage errors, config files, folders) are also tested in this process below."""
    cases = _bad_cases(workdir, tiny_png, run20[0])
    before = sorted(p.name for p in run20[0].iterdir())
    own = {"sweep_cifar_missing"}  # sweep.py sets the CPU device count before JAX starts: needs a fresh process
    with ThreadPoolExecutor(1) as pool:
        separate = {name: pool.submit(run_script, *cases[name], timeout=120) for name in own}
        results = run_scripts_in_one_process({name: case for name, case in cases.items() if name not in own})
        results.update({name: future.result() for name, future in separate.items()})
    return {name: (cases[name], results[name]) for name in cases}, before


EXPECTED_WORDS = {
    "missing_file": "does not exist", "unwritable_out": "cannot write", "out_not_empty": "not empty",
    "eval_every_0": "--eval-every", "omega0_text": "omega0", "learnable_maybe": "learnable",
    "config_steps_text": "steps must be a whole number",
    "resume_already_done": "already has 20 steps", "resume_other_out": "--resume", "resume_changed_width": "width",
    "resume_damaged": "damaged", "sweep_cifar_missing": "--cifar",
    "render_missing_checkpoint": "does not exist", "render_zero_size": "positive",
    "render_empty_region": "region", "render_unwritable_out": "does not exist", "render_damaged": "damaged",
}


@pytest.mark.parametrize("name", sorted(EXPECTED_WORDS))
def test_bad_input_exits_2_with_one_error_line(bad_runs, name):
    """omega0_text and learnable_maybe need the option type check of ModelConfig.validate (model_components)."""
    results, _ = bad_runs
    args, (rc, stdout, stderr) = results[name]
    assert rc == 2, f"{name}: exit {rc}\n{stderr}"
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "error:" in lines[0], stderr
    assert EXPECTED_WORDS[name] in lines[0], lines[0]
    assert stdout.strip() == ""
    # nothing was created where the output would have gone
    if "--out" in args and args[0] != "render.py" and name != "out_not_empty":
        assert not Path(args[args.index("--out") + 1]).exists()


def test_damaged_checkpoints_are_named(bad_runs):
    results, _ = bad_runs
    for name, folder in (("render_damaged", "damaged_run_2"), ("resume_damaged", "damaged_run")):
        args, (_, _, stderr) = results[name]
        assert f"{folder}/checkpoints" in stderr and "step 20" in stderr and "step 10" in stderr, stderr


def test_bad_inputs_leave_existing_runs_untouched(bad_runs, run20):
    """--out of a non-empty folder and failing renders of run20 did not add, remove or rewrite anything."""
    _, before = bad_runs
    assert sorted(p.name for p in run20[0].iterdir()) == before
    assert not (run20[0] / "render_8x8.png").exists()
    assert json.loads((run20[0] / "metrics.json").read_text())["steps"] == 20
    assert sorted(p.name for p in (run20[0] / "checkpoints").iterdir()) == ["10", "20"]


# ------------------------------------------------------------------------------------------ flags, in process


def _fit_flags(*argv: str):
    """The model and training flags as fit_image.py declares them, parsed."""
    parser = OneLineArgumentParser(prog="fit_image.py")
    add_model_flags(parser)
    add_training_flags(parser)
    parser.add_argument("--config")
    parser.add_argument("--resume")
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(("argv", "words"), [
    (["--steps", "-5"], "steps must be positive"), (["--batch-size", "0"], "batch_size must be positive"),
    (["--lr", "0"], "lr must be positive"), (["--width", "0"], "width"),
    (["--model", "siren", "--omega0", "20", "--layer-option", "nosuch=1"], "nosuch"),
    (["--config", "/nonexistent/c.json"], "does not exist"),
])
def test_bad_flag_values_raise_one_line_input_errors(argv, words):
    with pytest.raises(InputError) as err:
        config_from_flags(_fit_flags(*argv))
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("argv", [["--nosuch-flag"], ["--batch-size", "lots"], ["--layer-option", "novalue"],
                                  ["--model", "nosuch"]])
def test_usage_errors_are_one_line_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        _fit_flags(*argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "(see --help)" in err


@pytest.mark.parametrize("argv", [["--layer-option", "omega0=abc"], ["--encoding-option", "scale=abc"],
                                  ["--layer-option", "learnable=maybe"]])
def test_option_values_are_checked_against_their_fields(argv):
    """Needs ModelConfig.validate's option type check (model_components, merged separately)."""
    flags = _fit_flags("--model", "siren" if "scale=abc" not in argv else "ffn", *argv)
    with pytest.raises(ValueError) as err:
        config_from_flags(flags)
    assert argv[-1].split("=")[0] in str(err.value) and "\n" not in str(err.value)


def test_option_values_are_read_like_yaml_scalars():
    assert [scalar(t) for t in ("true", "False", "null", "3", "1e-4", "0.5", "abc", "-2")] == \
        [True, False, None, 3, 1e-4, 0.5, "abc", -2]
    config = config_from_flags(_fit_flags("--model", "ffn", "--encoding-option", "scale=3",
                                          "--layer-option", "activation=gelu"))
    assert config.model.encoding_options["scale"] == 3 and config.model.layer_options["activation"] == "gelu"


def test_flags_precedence(tmp_path):
    """defaults < --model preset (architecture and training) < --config < explicit flags."""
    assert config_from_flags(_fit_flags()) == FitConfig()
    siren = config_from_flags(_fit_flags("--model", "siren", "--steps", "7"))
    assert siren.lr == 1e-4 and siren.steps == 7 and siren.model.layer == "sine"
    saved = FitConfig.from_dict({"model": "siren", "lr": 5e-4, "steps": 11})
    saved.save(tmp_path / "c.json")
    from_file = config_from_flags(_fit_flags("--config", str(tmp_path / "c.json"), "--width", "16"))
    assert from_file.lr == 5e-4 and from_file.steps == 11 and from_file.model.width == 16
    assert config_from_flags(_fit_flags("--config", str(tmp_path / "c.json"), "--lr", "2e-3")).lr == 2e-3
    assert config_from_flags(_fit_flags("--batch-size", "full")).batch_size is None


def test_folder_and_config_errors_in_process(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        prepare_output_dir(tmp_path / "a_file", FitConfig())
    with pytest.raises(InputError, match="cannot write"):
        prepare_output_dir(tmp_path / "a_file" / "run", FitConfig())
    (tmp_path / "bad.json").write_text("{broken")
    with pytest.raises(InputError, match="JSON"):
        config_from_flags({"config": str(tmp_path / "bad.json")})
    (tmp_path / "a_dir").mkdir()
    with pytest.raises(InputError, match="config"):
        config_from_flags({"resume": str(tmp_path / "a_dir")})


# ------------------------------------------------------------------------------------------ benchmarks' flags

BENCHMARKS = ("classic_config.py", "many_fits.py", "render_memory.py", "siren_camera.py", "time_to_psnr.py")


def test_benchmarks_write_to_their_own_folder_unless_recording():
    """A user's run writes runs/benchmarks/NAME.json; only --record touches the committed benchmarks/results/;
    the PyTorch reference and CIFAR-10 paths are flags (checked with --help only: the benchmarks take minutes)."""
    results = run_scripts_in_one_process({name: (f"benchmarks/{name}", "--help") for name in BENCHMARKS})
    for name, (rc, stdout, stderr) in results.items():
        assert rc == 0, stderr
        text = " ".join(stdout.split())
        assert f"(default: runs/benchmarks/{name[:-3]}.json)" in text, text
        assert f"--record update the recorded results benchmarks/results/{name[:-3]}.json" in text, text
    assert "--torch-peer" in results["classic_config.py"][1] and "--torch-peer" in results["time_to_psnr.py"][1]
    assert "--cifar" in results["many_fits.py"][1]


def test_run_cli_reports_input_errors_and_keeps_bugs_loud(capsys):
    from inr_utils.cli import EXIT_BAD_INPUT, run_cli
    from inr_utils.errors import InputError, user_input

    def bad_flag() -> int:
        with user_input():  # a validator's ValueError while checking flags is the user's to fix
            raise ValueError("unknown option 'widht'; valid: width")

    with pytest.raises(SystemExit) as exit_info:
        run_cli(bad_flag)
    assert exit_info.value.code == EXIT_BAD_INPUT
    assert capsys.readouterr().err == "error: unknown option 'widht'; valid: width\n"

    def bug() -> int:
        raise ValueError("shapes (3,) and (4,) do not match")  # not input checking: a bug, keeps its traceback

    with pytest.raises(ValueError, match="do not match"):
        run_cli(bug)
    with pytest.raises(SystemExit):
        run_cli(lambda: (_ for _ in ()).throw(InputError("missing file x.png")))


def test_run_folder_flags_and_the_exit_of_a_training_script(capsys):
    parser = OneLineArgumentParser(prog="train.py")
    add_run_folder_flags(parser, "runs/<time>", "continue RUN_DIR")
    args = parser.parse_args(["--resume", "runs/a", "--out", "runs/b", "--no-progress"])
    assert args.no_progress
    with pytest.raises(InputError, match="drop --out"):
        check_run_flags(args)
    check_run_flags(parser.parse_args(["--resume", "runs/a", "--out", "runs/a/"]))  # the same folder is fine
    assert finish_training_command(130, None) == 130 and capsys.readouterr().out == ""  # stopped early: its code
    assert finish_training_command({"psnr": 30.5}, Path("runs/a")) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"psnr": 30.5} and "results in runs/a" in err
