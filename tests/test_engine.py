"""The engine: one fit is the one-model case of fit_many; the faults a new user hit (a batch larger than the
image, SIGTERM, resuming a decaying schedule with more steps, use_cpu_cores too late, a collapsed PSNR)."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import warnings

import jax
import numpy as np
import pytest
from conftest import REPO_ROOT, interrupt_fit_image, make_tiny_config, run_script

from inr_utils import engine
from inr_utils.errors import InputError
from inr_utils.evaluation import collapse_warnings, constant_baseline_psnr
from inr_utils.fit_runs import run_fit
from inr_utils.fitting import fit, initial_state
from inr_utils.optim import LR_SCHEDULES, build_optimizer, make_lr_schedule, relative_lr, schedule_horizon
from inr_utils.sweeps import fit_many, unstack


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_fit_equals_fit_many_of_one_model(image, schedule):
    """fit() and fit_many() of one config: the same parameters and PSNR (one engine, N = 1 and N = 1 + padding)."""
    config = make_tiny_config("siren", width=16, steps=20, batch_size=128, lr_schedule=schedule, steps_per_call=10)
    single = fit(image, config, progress=False, eval_every=10)
    many = fit_many(config, image, progress=False, eval_every=10, devices=jax.devices()[:1])
    assert many.num_models == 1
    for a, b in zip(jax.tree.leaves(single.state.params), jax.tree.leaves(unstack(many, 0)["params"]), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
    assert abs(single.history.column("full_psnr")[-1] - many.psnr_unclipped[0]) < 1e-3
    np.testing.assert_allclose(single.history.column("loss"), many.history.loss[:, 0], rtol=1e-5)


def test_schedule_registry_and_horizon_in_state():
    assert LR_SCHEDULES.names() == ["constant", "cosine", "exponential"]
    with pytest.raises(ValueError, match="constant, cosine, exponential"):
        make_lr_schedule(0.1, 10, "linear")
    # past its horizon a decaying schedule stays at its final fraction
    for name in ("cosine", "exponential"):
        assert float(relative_lr(20, 20, name, 0.05)) == pytest.approx(0.05, rel=1e-4)
        assert float(relative_lr(35, 20, name, 0.05)) == pytest.approx(0.05, rel=1e-4)
    config = make_tiny_config(steps=30, lr_schedule="cosine")
    state = build_optimizer(config, 0.5).init({"w": np.zeros(3, np.float32)})
    assert schedule_horizon(state) == 30 and float(state[-1].lr) == 0.5


def test_batch_larger_than_the_image_is_clamped_with_one_warning(image):
    config = make_tiny_config(steps=10, batch_size=10_000_000)
    with pytest.warns(UserWarning, match="larger than the signal's 1024 points") as caught:
        result = fit(image, config, progress=False)
    assert len([w for w in caught if "larger than" in str(w.message)]) == 1
    full = fit(image, dataclasses.replace(config, batch_size=None), progress=False)
    np.testing.assert_array_equal(result.history.column("loss"), full.history.column("loss"))


def test_cli_batch_larger_than_the_image_says_so_once(tmp_path, tiny_png):
    rc, stdout, stderr = run_script("fit_image.py", "--image", tiny_png, "--model", "relu_pe", "--width", "16",
                                    "--depth", "1", "--max-size", "16", "--steps", "10", "--steps-per-call", "10",
                                    "--batch-size", "10000000", "--no-progress", "--out", tmp_path / "run")
    assert rc == 0, stderr
    assert stderr.count("batch size 10000000 is larger than the signal's 256 points") == 1 and "Traceback" not in stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert any("batch size 10000000" in w for w in metrics["warnings"])


def test_step_too_large_for_memory_is_refused_before_compiling(image, monkeypatch):
    monkeypatch.setattr(engine, "available_memory_bytes", lambda device=None: 1 << 20)
    with pytest.raises(InputError, match=r"needs about .* GiB, more than the 0\.0 GiB.*--batch-size"):
        fit(image, make_tiny_config(steps=10, batch_size=None, width=64), progress=False)


def test_resume_with_more_steps_keeps_the_schedule_and_says_so(image, tmp_path, tiny_png):
    config = make_tiny_config("relu_pe", image=str(tiny_png), steps=20, lr_schedule="cosine", lr=3e-3)
    run_fit(config, tmp_path / "run", progress=False, log=lambda line: None)
    notes: list[str] = []
    metrics = run_fit(dataclasses.replace(config, steps=30), tmp_path / "run", resume=True, progress=False,
                      log=notes.append)
    assert metrics["steps"] == 30
    assert notes[0].startswith(f"resumed from step 20 of {tmp_path / 'run'}; training to step 30")
    assert "keeps its original 20 steps" in notes[0] and "final 0.00015" in notes[0]
    _, _, template = initial_state(config, 3)
    from inr_utils.checkpoints import restore_checkpoint

    assert schedule_horizon(restore_checkpoint(tmp_path / "run" / "checkpoints", template).opt_state) == 20


def test_sigterm_saves_a_checkpoint_and_the_run_resumes(tmp_path, tiny_png):
    """SIGTERM (what `timeout` and schedulers send) stops like Ctrl-C: a checkpoint, exit 130, --resume works."""
    out = tmp_path / "run"
    rc, stderr = interrupt_fit_image(
        ["--image", tiny_png, "--model", "relu_pe", "--num-frequencies", "4", "--width", "16", "--depth", "1",
         "--max-size", "16", "--lr", "3e-3", "--lr-schedule", "constant", "--steps", "1000000",
         "--steps-per-call", "20", "--checkpoint-every", "0", "--out", out], signal.SIGTERM, min_step=40)
    assert rc == 130, stderr
    assert "Traceback" not in stderr
    step = int(re.search(r"interrupted at step (\d+)", stderr).group(1))
    assert step >= 40 and step % 20 == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [str(step)]
    rc, stdout, stderr = run_script("fit_image.py", "--resume", out, "--steps", str(step + 20), "--no-progress")
    assert rc == 0, stderr
    assert f"resumed from step {step} of {out}" in stderr
    assert json.loads((out / "metrics.json").read_text())["steps"] == step + 20
    with open(out / "history.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(1, step + 21))


LATE_CPU_CORES = textwrap.dedent("""
    import json, warnings
    import jax
    jax.numpy.zeros(1).block_until_ready()  # JAX has started
    from inr_utils.devices import use_cpu_cores
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        applied = use_cpu_cores(2)
    print(json.dumps({"applied": applied, "devices": len(jax.devices()), "warnings": [str(w.message) for w in caught]}))
""")


def test_use_cpu_cores_after_jax_started_warns():
    env = {k: v for k, v in _env().items() if k != "XLA_FLAGS"}
    proc = subprocess.run([sys.executable, "-c", LATE_CPU_CORES], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert facts["applied"] is False and facts["devices"] == 1
    assert len(facts["warnings"]) == 1 and "after JAX started" in facts["warnings"][0]


def test_collapse_warnings_known_answers():
    assert collapse_warnings(30.0, 31.0, 15.0) == []
    assert "collapsed" in collapse_warnings(20.0, 30.0, 15.0)[0]
    assert "constant image" in collapse_warnings(5.5, 6.0, 15.0)[0]
    flat = np.full((4, 4, 3), 0.5)
    flat[0, 0] = 0.6
    assert constant_baseline_psnr(flat) == pytest.approx(10 * np.log10(1 / (0.01 * 15 / 256)), rel=1e-6)


def test_collapsed_run_warns_in_log_and_metrics(tmp_path, tiny_png):
    """lr 1e4: training ends 'successfully' at about 5.5 dB, below the mean-colour image's 15 dB."""
    config = make_tiny_config("relu_pe", image=str(tiny_png), steps=20, lr=1e4)
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = run_fit(config, tmp_path / "run", progress=False, log=notes.append)
    assert metrics["psnr"] < 10 and len(metrics["warnings"]) >= 1
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["warnings"] == metrics["warnings"]
    assert any(line.startswith("warning: the final PSNR") for line in notes)
    good = run_fit(dataclasses.replace(config, lr=3e-3), tmp_path / "good", progress=False, log=notes.append)
    assert good["warnings"] == []

