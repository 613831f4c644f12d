"""Shared fixtures of the flax-inr test suite.

Everything is kept tiny (32x32 images, widths of 32-64, tens of steps) so the whole suite runs in a couple of
minutes on two CPU cores. ``jax_numpy_rank_promotion="raise"`` is *not* enabled: Flax's idiomatic
``y + bias`` on ``(..., n) + (n,)`` and the NeRF encoding's ``(..., d, 1) * (L,)`` rely on rank promotion.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest
from PIL import Image

from inr_utils.config import FitConfig
from model_components.inrs import model_config

REPO_ROOT = Path(__file__).resolve().parent.parent

# One persistent XLA compilation cache for the suite and the scripts it runs as subprocesses (they inherit the
# environment): the tests compile the same small programs in many processes (every script run compiles its model
# again), and a cache hit skips XLA's compilation. Keyed by the program and the JAX version, so it never changes
# a result; a user's own JAX_COMPILATION_CACHE_DIR is kept.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(),
                                                                 f"flax-inr-test-xla-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

# Cheaper XLA compilation for the suite and the scripts it runs (they inherit XLA_FLAGS; set here, before JAX's
# backend starts): the tests' programs are tiny, so LLVM's full optimisation and XLA:CPU's newer fusion emitters
# cost far more compile time than they save in run time (about a third of a cold-cache run's CPU time). Level 1
# keeps fused multiply-adds: compiled initialisation still equals op-by-op bit for bit (the options of
# inr_utils.programs.ONCE_COMPILER_OPTIONS). Flags a user already set win.
_xla_flags = os.environ.get("XLA_FLAGS", "").split()
os.environ["XLA_FLAGS"] = " ".join(_xla_flags + [flag for flag in ("--xla_backend_optimization_level=1",
                                                                    "--xla_cpu_use_fusion_emitters=false")
                                                 if not any(f.startswith(flag.split("=")[0]) for f in _xla_flags)])


#: The test modules from the heaviest (CPU time on a cold compilation cache) to the lightest. Whole modules go to
#: one worker (``--dist loadscope``, with xdist's own reordering by test count turned off in pyproject.toml), in
#: this order, modules not listed here first: the heavy ones start early, the last to start are short, and
#: neither worker idles long at the end. A new module that takes long belongs in this list at its place.
MODULE_ORDER = (
    "test_restoration.py", "test_experiments.py", "test_signals.py", "test_local_global.py", "test_poisson.py",
    "test_meta_learning.py", "test_tomography.py", "test_compression.py", "test_spectral_bias.py", "test_incode.py",
    "test_interpolation.py", "test_la_inr.py", "test_layer_zoo.py", "test_hypernet_models.py", "test_cli.py",
    "test_sweeps.py", "test_transformations.py", "test_hyper_evaluation.py", "test_models.py", "test_training.py",
    "test_engine.py", "test_hyper_distributed.py", "test_hyper_training.py", "test_registries.py", "test_nd_fit.py",
    "test_nd_signals.py", "test_hash_grid.py", "test_grids_metrics.py", "test_encodings_extra.py", "test_encodings.py",
    "test_templates.py", "test_fast_math.py", "test_hyper_datasets.py", "test_images.py", "test_config.py",
    "test_tables.py", "test_conventions.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Orders the modules as :data:`MODULE_ORDER` says (a stable sort: each module's tests keep their order)."""
    rank = {name: i for i, name in enumerate(MODULE_ORDER)}
    items.sort(key=lambda item: rank.get(item.path.name, -1))


def synthetic_image(height: int = 32, width: int = 32) -> np.ndarray:
    """Smooth gradients plus a few low-frequency sinusoids, float32 ``(H, W, 3)`` in [0, 1]."""
    y, x = np.meshgrid(np.linspace(0.0, 1.0, height), np.linspace(0.0, 1.0, width), indexing="ij")
    r = 0.15 + 0.7 * x
    g = 0.2 + 0.6 * y + 0.1 * np.sin(2 * np.pi * 2 * x)
    b = 0.5 + 0.2 * np.sin(2 * np.pi * 1.5 * x) * np.cos(2 * np.pi * 1 * y) + 0.1 * np.cos(2 * np.pi * 3 * (x + y))
    image = np.stack([r, g, b], axis=-1)
    assert image.min() >= 0.0 and image.max() <= 1.0
    return image.astype(np.float32)


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(0)


@pytest.fixture(scope="session")
def image() -> np.ndarray:
    """32x32x3 synthetic image in [0, 1]."""
    return synthetic_image(32, 32)


def make_tiny_config(model: str = "relu_pe", width: int = 32, depth: int = 1, **overrides) -> FitConfig:
    """A FitConfig small enough to train in a fraction of a second per chunk.

    FitConfig fields go to FitConfig; the rest (``num_frequencies``, ``fourier_features``, ``dtype``, ...) to
    ``model_config``. The learning rate is constant unless ``lr_schedule`` is given (with a decaying schedule, a run
    extended by resuming with more steps follows a different schedule than one planned that long). The model
    dtype stays the preset's (``auto``: bfloat16 on hardware with native bfloat16 products).
    """
    fit_fields = {f.name for f in dataclasses.fields(FitConfig)}
    model_kw = {k: overrides.pop(k) for k in list(overrides) if k not in fit_fields}
    if model == "relu_pe":
        model_kw.setdefault("num_frequencies", 6)
    if model == "ffn":
        model_kw.setdefault("fourier_features", 32)
        model_kw.setdefault("fourier_scale", 3.0)
    fit_kw = dict(steps=20, batch_size=256, lr=1e-3, lr_schedule="constant", steps_per_call=10, checkpoint_every=0,
                  max_size=32, seed=0)
    fit_kw.update(overrides)
    return FitConfig(model=model_config(model, width=width, depth=depth, **model_kw), **fit_kw).validate()


@pytest.fixture
def tiny_config() -> Callable[..., FitConfig]:
    """Factory: ``tiny_config(model="relu_pe", width=32, depth=1, **overrides) -> FitConfig``."""
    return make_tiny_config


def run_script(script: str, *args: Any, timeout: float = 240, env: dict | None = None) -> tuple[int, str, str]:
    """Runs ``experiments/<script>`` (e.g. ``"classic/resolution.py"``; or ``benchmarks/<name>.py``) in a
    subprocess with the test interpreter, cwd at the repo root: the way a user runs it (tests never import the
    scripts).

    Returns:
      (returncode, stdout, stderr).
    """
    # PYTHONPATH: the scripts import this checkout's packages (the ones the in-process tests see).
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": python_path, **(env or {})}
    proc = subprocess.run([sys.executable, str(script_path(script)), *map(str, args)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=full_env)
    return proc.returncode, proc.stdout, proc.stderr


def interrupt_fit_image(args: Sequence[Any], sig: int, min_step: int, timeout: float = 120) -> tuple[int, str]:
    """Starts ``experiments/fit_image.py ARGS`` (which must train for 1,000,000 steps with a progress bar), sends
    it ``sig`` once the bar has counted ``min_step`` steps, and waits for it to exit.

    Returns:
      (returncode, stderr).
    """
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": python_path}
    cmd = [sys.executable, str(REPO_ROOT / "experiments" / "fit_image.py"), *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:  # wait until the progress bar counts steps
            counts = [int(c) for c in re.findall(r"\|\s*(\d+)/1000000", "".join(chunks))]
            if counts and max(counts) >= min_step:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "".join(chunks)
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=5)
    return rc, "".join(chunks)


def run_scripts(cases: Mapping[str, Sequence[Any]], timeout: float = 240, workers: int = 2,
                ) -> dict[str, tuple[int, str, str]]:
    """Runs several ``run_script(*args)`` calls, ``workers`` at a time (a script's start-up is mostly one busy
    core, so two overlap well on two cores); returns name -> (returncode, stdout, stderr)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(run_script, *args, timeout=timeout) for name, args in cases.items()}
        return {name: future.result() for name, future in futures.items()}


def script_path(script: str) -> Path:
    """``experiments/<script>``, or ``<script>`` itself for ``benchmarks/...`` and ``tests/...``."""
    return REPO_ROOT / script if script.startswith(("benchmarks/", "tests/")) else REPO_ROOT / "experiments" / script


def run_scripts_in_one_process(cases: Mapping[str, Sequence[Any]], timeout: float = 240,
                               ) -> dict[str, tuple[int, str, str]]:
    """Runs several quick script runs (``--help``, bad input refused before any work) one after another in ONE
    subprocess (``tests/script_batch.py``): each still runs as ``__main__`` with its own argv, its own stdout and
    stderr (file descriptors, so everything written is caught) and exit code, but Python's and JAX's start-up are
    paid once instead of once per run. ``cases``: name -> ``(script, *args)`` as for :func:`run_script`.

    Returns:
      name -> (returncode, stdout, stderr).
    """
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": python_path}
    with tempfile.TemporaryDirectory() as tmp:
        batch = [{"path": str(script_path(str(script))), "args": [str(a) for a in args],
                  "stdout": os.path.join(tmp, f"{i}.out"), "stderr": os.path.join(tmp, f"{i}.err")}
                 for i, (script, *args) in enumerate(cases.values())]
        cases_file = Path(tmp) / "cases.json"
        cases_file.write_text(json.dumps(batch))
        proc = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "script_batch.py"), str(cases_file)],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=env)
        assert proc.returncode == 0, f"the script batch failed:\n{proc.stdout}\n{proc.stderr}"
        codes = json.loads(Path(str(cases_file) + ".codes").read_text())
        return {name: (code, Path(case["stdout"]).read_text(), Path(case["stderr"]).read_text())
                for name, code, case in zip(cases, codes, batch, strict=True)}


@pytest.fixture(scope="session")
def cli() -> Callable[..., tuple[int, str, str]]:
    """``cli(script, *args) -> (returncode, stdout, stderr)``; e.g. ``cli("fit_image.py", "--steps", 10)``."""
    return run_script


def write_png(path: Path, array: np.ndarray) -> Path:
    """Writes a uint8 ``(H, W)`` / ``(H, W, 3|4)`` or uint16 ``(H, W)`` array as a PNG; returns the path."""
    Image.fromarray(array).save(path)
    return path


@pytest.fixture(scope="session")
def tiny_png(tmp_path_factory, image) -> Path:
    """The synthetic image saved as an 8-bit RGB PNG."""
    path = tmp_path_factory.mktemp("images") / "tiny.png"
    return write_png(path, np.round(image * 255).astype(np.uint8))
