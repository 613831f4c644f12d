"""Hypernetwork training (hypernetwork_utils.training) on a stand-in hypernetwork: the step learns, a chunk equals
its steps, a resumed run equals an uninterrupted one; settings and presets."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import run_scripts_in_one_process
from hyper_distributed_worker import BATCH, CHANNELS, SIZE, TinyHyper, dataset, make_chunks

from hypernetwork_utils.evaluation import reconstruct
from hypernetwork_utils.presets import TRAINING_PRESETS, training_preset
from hypernetwork_utils.training import (
    HyperTrainingSettings,
    build_hyper_optimizer,
    image_coords,
    init_hyper_state,
    make_hyper_train_step,
    train_hypernetwork,
)
from inr_utils.callbacks import History, TensorBoardLog
from inr_utils.checkpoints import load_config, restore_checkpoint, save_checkpoint
from inr_utils.engine import ChunkInfo
from inr_utils.training import DivergenceError, merge_variables

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def setup():
    """(model, step-0 state, train step with jitter 0.01, the same step without jitter): shared, so every test
    reuses the compiled chunks."""
    settings = HyperTrainingSettings(batch_size=BATCH, lr=3e-3, warmup_epochs=1, steps=40, jitter=0.01)
    model = TinyHyper()
    optimizer = build_hyper_optimizer(settings, steps_per_epoch=2)
    state = init_hyper_state(model, optimizer, jax.random.key(0), (SIZE, SIZE, CHANNELS))
    return (model, state, make_hyper_train_step(model.apply, optimizer, (SIZE, SIZE), 0.01),
            make_hyper_train_step(model.apply, optimizer, (SIZE, SIZE), 0.0))


def _close(a, b, **kw) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: np.allclose(x, y, **kw), a, b)))


def test_train_step_reduces_the_loss(setup):
    _, state, step, _ = setup
    history = History()
    train_hypernetwork(state, make_chunks(dataset(), BATCH), jax.random.key(1), step, 30, steps_per_call=2,
                       callbacks=[history])
    losses = history.loss[:, 0]
    assert losses.shape == (30,) and np.isfinite(losses).all()
    assert losses[-5:].mean() < 0.5 * losses[:3].mean()


def test_chunk_of_k_steps_equals_k_steps(setup):
    _, state, step, _ = setup
    chunks = make_chunks(dataset(), BATCH)
    key = jax.random.key(1)
    chunk_history, step_history = History(), History()
    chunked = train_hypernetwork(state, chunks, key, step, 3, steps_per_call=3, callbacks=[chunk_history]).state
    single = train_hypernetwork(state, chunks, key, step, 3, steps_per_call=1, callbacks=[step_history]).state
    assert chunk_history.chunk_steps.tolist() == [3] and step_history.chunk_steps.tolist() == [1, 2, 3]
    np.testing.assert_allclose(chunk_history.loss, step_history.loss, rtol=1e-5)
    assert int(chunked.step) == 3 and _close(chunked.params, single.params, rtol=1e-5, atol=1e-6)
    # and one step by hand: the batch of step s, key fold_in(key, s)
    by_hand, metrics = jax.jit(step)(state, chunks(0, 1)[0], jax.random.fold_in(key, 0))
    np.testing.assert_allclose(float(metrics["loss"]), step_history.loss[0, 0], rtol=1e-5)


def test_jitter_moves_the_queries_per_image(setup):
    model, state, jittered, plain = setup
    images = dataset()[:2]
    coords = image_coords(SIZE, SIZE)
    assert coords.shape == (SIZE * SIZE, 2)
    key = jax.random.key(3)
    _, ma = jax.jit(jittered)(state, images, key)
    _, mb = jax.jit(plain)(state, images, key)
    assert float(ma["loss"]) != float(mb["loss"])  # the jittered step sees other coordinates
    clean = model.apply(merge_variables(state.params, state.constants), images, coords)
    np.testing.assert_allclose(float(mb["loss"]), float(np.mean((clean - images.reshape(2, -1, 3)) ** 2)),
                               rtol=1e-5)


def test_resumed_run_equals_uninterrupted(setup, tmp_path):
    _, state, step, _ = setup
    chunks = make_chunks(dataset(), BATCH)
    key = jax.random.key(1)
    straight = train_hypernetwork(state, chunks, key, step, 6, steps_per_call=2).state
    half = train_hypernetwork(state, chunks, key, step, 3, steps_per_call=2).state  # chunks of 2 then 1
    save_checkpoint(tmp_path / "ck", half, {"note": "test"})
    restored = restore_checkpoint(tmp_path / "ck", state)
    assert int(restored.step) == 3
    resumed = train_hypernetwork(restored, chunks, key, step, 6, steps_per_call=2).state
    assert int(resumed.step) == 6
    assert _close(resumed.params, straight.params, rtol=1e-5, atol=1e-6)
    assert _close(resumed.opt_state, straight.opt_state, rtol=1e-5, atol=1e-6)


def test_divergence_raises_with_the_last_good_state(setup):
    _, state, step, _ = setup
    chunks = make_chunks(dataset() * np.nan, BATCH)
    with pytest.raises(DivergenceError) as err:
        train_hypernetwork(state, chunks, jax.random.key(1), step, 4, steps_per_call=2)
    assert int(err.value.state.step) == 0


def test_reconstruct_matches_apply_and_pads_the_last_batch(setup):
    model, state, _, _ = setup
    images = dataset()[:5]
    variables = merge_variables(state.params, state.constants)
    recon = reconstruct(model, variables, images, batch_size=2)
    direct = model.apply(variables, images, image_coords(SIZE, SIZE)).reshape(images.shape)
    np.testing.assert_allclose(recon, direct, rtol=1e-5, atol=1e-6)


def test_tensorboard_scalars_per_step_and_held_out():
    class Writer:
        def __init__(self):
            self.scalars = []

        def add_scalar(self, tag, value, step):
            self.scalars.append((tag, value, step))

        def flush(self):
            pass

    writer = Writer()
    info = ChunkInfo(None, 12, 20, {"loss": np.array([[0.5], [0.25]]), "psnr": np.array([[3.0], [6.0]])}, 1.0,
                     {"full_psnr": 7.5}, stacked=False)
    TensorBoardLog(writer)(info)
    assert writer.scalars == [("train/loss", 0.5, 11), ("train/psnr", 3.0, 11), ("train/loss", 0.25, 12),
                              ("train/psnr", 6.0, 12), ("val/psnr", 7.5, 12)]


def test_settings_presets_and_schedule():
    settings = HyperTrainingSettings()
    assert (settings.batch_size, settings.lr, settings.warmup_epochs, settings.jitter) == (16, 5e-4, 5.0, 0.01)
    assert HyperTrainingSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    with pytest.raises(ValueError, match="unknown training setting"):
        HyperTrainingSettings.from_dict({"batchsize": 3})
    with pytest.raises(ValueError, match="batch_size"):
        HyperTrainingSettings(batch_size=0).validate()
    paper = training_preset("gpu_paper")
    assert (paper.epochs, paper.batch_size, paper.lr, paper.warmup_epochs) == (40, 16, 5e-4, 5)
    assert set(TRAINING_PRESETS) == {"cpu", "gpu_paper"}
    with pytest.raises(ValueError, match="gpu_paper"):
        training_preset("tpu")
    # warm-up then cosine: rises linearly for 5 epochs, peaks at lr, decays to the final fraction at the end
    from inr_utils.optim import relative_lr

    s = HyperTrainingSettings(epochs=10, warmup_epochs=5, final_lr_fraction=0.0)
    assert (s.total_steps(100), s.warmup_steps(100)) == (1000, 500)
    lrs = np.asarray([float(relative_lr(c, 1000, "cosine", 0.0, 500)) for c in (0, 250, 500, 750, 1000)])
    np.testing.assert_allclose(lrs, [0, 0.5, 1, 0.5, 0], atol=1e-6)


# ------------------------------------------------------------------ experiments/train_hypernetwork.py end to end

WORKER = Path(__file__).with_name("hyper_distributed_worker.py")
TINY_RUN = ["--model", "tiny", "--data", "lfw:40", "--image-size", "16", "--steps", "20", "--batch-size", "8",
            "--val-count", "8", "--steps-per-call", "5", "--checkpoint-every", "10", "--eval-every", "10",
            "--no-progress"]


def _script(*args) -> tuple[int, str, str]:
    """``train_hypernetwork.py ARGS`` in a subprocess, with the stand-in hypernetwork registered as ``tiny``."""
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, str(WORKER), "--run-script", *map(str, args)], capture_output=True,
                          text=True, timeout=240, env=env, cwd=REPO_ROOT)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def script_runs(tmp_path_factory):
    """A tiny run on 40 LFW faces, then a copy of it rolled back to its step-10 checkpoint and resumed, and the
    bad-input cases (one after another in one more subprocess, alongside the run)."""
    tmp = tmp_path_factory.mktemp("script")
    (tmp / "a_file").write_text("x")
    bad = {"unknown model": ["--model", "nope", "--data", "lfw:40", "--out", tmp / "b1"],
           "unknown option": [*TINY_RUN, "--set", "depth=3", "--out", tmp / "b2"],
           "missing data": ["--model", "tiny", "--data", tmp / "missing", "--out", tmp / "b3"],
           "bad flag": ["--model", "tiny", "--data", "lfw", "--epochs", "many"],
           "unwritable out": [*TINY_RUN, "--out", tmp / "a_file"]}
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(_script, *TINY_RUN, "--out", tmp / "run")
        bad_results = run_scripts_in_one_process({name: ("tests/hyper_distributed_worker.py", "--run-script", *args)
                                                  for name, args in bad.items()})
        results = {"run": first.result(), **bad_results}
    assert results["run"][0] == 0, results["run"][2][-3000:]
    shutil.copytree(tmp / "run", tmp / "resumed")
    shutil.rmtree(tmp / "resumed" / "checkpoints" / "20")
    results["resume"] = _script("--resume", tmp / "resumed", "--no-progress")
    return tmp, results


def test_script_writes_the_run_folder(script_runs):
    tmp, results = script_runs
    run = tmp / "run"
    for name in ("config.json", "history.csv", "metrics.json", "reconstructions.png"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["hypernetwork"]["architecture"] == "tiny"
    assert config["hypernetwork"]["image_size"] == [16, 16] and config["hypernetwork"]["channels"] == 1
    assert config["training"]["steps"] == 20 and config["training"]["jitter"] == 0.01
    assert config["data"]["path"] == "lfw:40" and config["data"]["val_count"] == 8
    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == [10, 20]
    assert load_config(run / "checkpoints") == config
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics == json.loads(results["run"][1].strip().splitlines()[-1])
    assert metrics["steps"] == 20 and metrics["val_count"] == 8 and 5 < metrics["val_psnr"] < 60
    history = History.from_csv(run / "history.csv")
    assert history.steps.tolist() == list(range(1, 21)) and history.eval_steps.tolist() == [10, 20]
    assert history.full_psnr[-1, 0] == pytest.approx(metrics["val_psnr"], abs=1e-3)


def test_resume_continues_exactly(script_runs):
    tmp, results = script_runs
    rc, _, err = results["resume"]
    assert rc == 0, err[-3000:]
    assert "resumed from step 10" in err
    straight = History.from_csv(tmp / "run" / "history.csv")
    resumed = History.from_csv(tmp / "resumed" / "history.csv")
    assert resumed.steps.tolist() == list(range(1, 21))
    np.testing.assert_allclose(resumed.loss, straight.loss, rtol=1e-5)
    a, b = (json.loads((tmp / name / "metrics.json").read_text()) for name in ("run", "resumed"))
    assert b["steps"] == 20 and b["steps_run"] == 10
    assert b["val_psnr"] == pytest.approx(a["val_psnr"], abs=1e-3)


@pytest.mark.parametrize("case", ["unknown model", "unknown option", "missing data", "bad flag", "unwritable out"])
def test_bad_input_is_one_line_exit_2(script_runs, case):
    tmp, results = script_runs
    rc, out, err = results[case]
    assert rc == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err and "error" in lines[0], err
    assert not (tmp / f"b{list(results).index(case)}" / "config.json").exists()


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    """SIGTERM (what schedulers send; Ctrl-C is handled the same) mid-run: the step of the last complete chunk is
    checkpointed, history.csv written, exit code 130 with a --resume hint."""
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1"}
    args = [*TINY_RUN[:TINY_RUN.index("--steps")], "--steps", "1000000", "--batch-size", "8", "--val-count", "8",
            "--steps-per-call", "5", "--checkpoint-every", "0", "--eval-every", "0", "--out", str(tmp_path / "run")]
    proc = subprocess.Popen([sys.executable, str(WORKER), "--run-script", *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and proc.poll() is None:  # until the bar has counted a few chunks
            counts = [int(c) for c in re.findall(r"\|\s*(\d+)/1000000", "".join(chunks))]
            if counts and max(counts) >= 10:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "".join(chunks)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=5)
    err = "".join(chunks)
    assert rc == 130, err[-2000:]
    match = re.search(r"interrupted at step (\d+); checkpoint saved\. Continue with: .*--resume", err)
    assert match, err[-2000:]
    step = int(match.group(1))
    assert step >= 10 and step % 5 == 0 and "Traceback" not in err
    assert (tmp_path / "run" / "checkpoints" / str(step)).is_dir()
    assert History.from_csv(tmp_path / "run" / "history.csv").steps[-1] == step
