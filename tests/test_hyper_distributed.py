"""Data-parallel hypernetwork training (hypernetwork_utils.distributed): 4 forced CPU devices and two processes on
localhost (jax.distributed, gloo collectives) train the same steps as one device, to float tolerance."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from hyper_distributed_worker import flat_params, train

from hypernetwork_utils.distributed import data_mesh, global_batch, initialize_distributed, local_rows
from inr_utils.errors import InputError

WORKER = Path(__file__).with_name("hyper_distributed_worker.py")
REPO_ROOT = Path(__file__).resolve().parent.parent
STEPS = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _worker(args: list[str], xla_flags: str = "") -> subprocess.CompletedProcess:
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    xla_flags = f"{os.environ.get('XLA_FLAGS', '')} {xla_flags}"  # conftest's compile flags kept
    env = {**os.environ, "PYTHONPATH": python_path, "XLA_FLAGS": xla_flags, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(WORKER), *args], capture_output=True, text=True, timeout=240,
                          env=env, cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The sharded runs, started together: 4 forced CPU devices in one process; two processes of 2 CPU devices
    each (4 in all) joined by jax.distributed on a free localhost port, which first run train_hypernetwork.py as
    that two-process run (its own --coordinator flags), then train the stand-in, saving and restoring a
    checkpoint."""
    tmp = tmp_path_factory.mktemp("dist")
    port = _free_port()
    two = ["--coordinator", f"localhost:{port}", "--num-processes", "2", "--local-devices", "2"]
    script = ["--model", "tiny", "--data", "lfw:40", "--image-size", "16", "--steps", "10", "--batch-size", "8",
              "--val-count", "8", "--steps-per-call", "5", "--checkpoint-every", "5", "--no-progress", "--out",
              str(tmp / "run"), *two]
    two += ["--checkpoint", str(tmp / "ck"), "--steps", str(STEPS)]
    jobs = {"four_devices": (["--steps", str(STEPS), str(tmp / "four.npz")],
                             "--xla_force_host_platform_device_count=4"),
            **{f"process_{i}": ([str(tmp / ("two.npz" if i == 0 else "unused.npz")), *two, "--process-id", str(i),
                                 "--script-args", json.dumps([*script, "--process-id", str(i)])], "")
               for i in range(2)}}
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = {name: pool.submit(_worker, *job) for name, job in jobs.items()}
        procs = {name: future.result() for name, future in futures.items()}
    for name, proc in procs.items():
        assert proc.returncode == 0, f"{name}:\n{proc.stderr[-3000:]}"
    return {"four": dict(np.load(tmp / "four.npz")), "two": dict(np.load(tmp / "two.npz")), "dir": tmp,
            "procs": procs}


@pytest.fixture(scope="module")
def single():
    state, losses = train(STEPS, mesh=None)
    return {"loss": losses, **flat_params(state.params)}


def _assert_same(run: dict, single: dict) -> None:
    np.testing.assert_allclose(run["loss"], single["loss"], rtol=1e-4)
    names = [k for k in single if k.startswith("param/")]
    assert names and sorted(names) == sorted(k for k in run if k.startswith("param/"))
    for name in names:
        np.testing.assert_allclose(run[name], single[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_four_devices_equal_one(runs, single):
    assert int(runs["four"]["devices"]) == 4 and int(runs["four"]["processes"]) == 1
    _assert_same(runs["four"], single)


def test_two_processes_equal_one(runs, single):
    assert int(runs["two"]["devices"]) == 4 and int(runs["two"]["processes"]) == 2
    _assert_same(runs["two"], single)
    assert (runs["dir"] / "ck" / str(STEPS)).is_dir()  # the checkpoint written together, restored by both


def test_two_process_script_run(runs):
    """train_hypernetwork.py as two processes: one run folder, checkpoints written together, files by process 0."""
    run = runs["dir"] / "run"
    for name in ("config.json", "history.csv", "metrics.json", "reconstructions.png"):
        assert (run / name).is_file(), name
    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == [5, 10]
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["devices"], metrics["processes"], metrics["steps"]) == (4, 2, 10)
    assert json.loads(runs["procs"]["process_0"].stdout.strip().splitlines()[-1]) == metrics
    own = [line for line in runs["procs"]["process_1"].stdout.splitlines() if not line.startswith("[Gloo]")]
    assert own == []  # process 1 prints no results of its own (gloo's connection notes aside)


def test_one_device_mesh_and_batch_checks():
    mesh = data_mesh(jax.devices()[:1])
    chunk = np.zeros((2, 4, 3, 3, 1), np.float32)
    placed = global_batch(chunk, mesh)
    assert placed.shape == chunk.shape and placed.sharding.spec[1] == "data"
    assert local_rows(4, mesh) == 4
    with pytest.raises(InputError, match="multiple of 2"):
        local_rows(3, SimpleNamespace(devices=np.zeros(2)))  # a stand-in mesh of 2 devices
    with pytest.raises(InputError, match="HOST:PORT"):
        initialize_distributed("localhost", 2, 0)
    with pytest.raises(InputError, match="process-id"):
        initialize_distributed("localhost:1234", 2, 2)
