"""Sweeps: N INRs trained by one vmapped program equal the same fits run one by one with ``fit``; configs that
cannot share a program are refused; the model axis shards over devices (4 fake CPU devices, in a subprocess)."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from conftest import REPO_ROOT, run_script, synthetic_image

from hypernetwork_utils.cifar10 import load_cifar10_batch
from inr_utils import sweeps
from inr_utils.config import FitConfig
from inr_utils.engine import SweepInterrupted
from inr_utils.errors import InputError
from inr_utils.fitting import fit
from inr_utils.initialization import init_states
from inr_utils.metrics import psnr
from inr_utils.optim import build_optimizer
from inr_utils.programs import clear_program_cache
from inr_utils.rendering import render
from inr_utils.sweeps import default_models_per_block, fit_many, sweep_grid, unstack
from model_components.inrs import model_config

SIZE = 16
# A SIREN small enough to fit in a fraction of a second, trained on random batches with a cosine schedule over
# two compiled chunks, so the per-model sampling keys, the relative lr schedule and chunking are all exercised.
BASE = FitConfig(model=model_config("siren", width=16, depth=1), steps=20, batch_size=64, lr=1e-3,
                 lr_schedule="cosine", steps_per_call=10, checkpoint_every=0, max_size=SIZE, seed=0)

# Tolerances: the vmapped program multiplies batched matrices where ``fit`` multiplies single ones, so sums may
# round differently (~1e-7 relative a product). Adam divides by sqrt(v), which turns a rounding difference of
# a near-zero gradient into a parameter difference of up to ~lr * 1e-3 after 20 steps; parameters are compared
# at 1e-4 relative with a 1e-5 absolute floor, and PSNR to 0.01 dB.
RTOL, ATOL, PSNR_DB = 1e-4, 1e-5, 0.01


def image_a() -> np.ndarray:
    return synthetic_image(SIZE, SIZE)


def image_b() -> np.ndarray:
    return np.ascontiguousarray(synthetic_image(SIZE, SIZE)[::-1, ::-1, ::-1])  # flipped, channels reversed


_single_fits: dict[str, tuple] = {}


def single_fit(config: FitConfig, image: np.ndarray, key: str):
    """``fit`` of one config (cached by ``key`` across tests: the base fit serves every case)."""
    if key not in _single_fits:
        result = fit(image, config, progress=False, eval_every=config.steps)
        _single_fits[key] = (result.state.params, result.state.constants, result.history.column("full_psnr")[-1])
    return _single_fits[key]


def assert_matches_fit(result, i: int, config: FitConfig, image: np.ndarray, key: str) -> None:
    params, constants, full_psnr = single_fit(config, image, key)
    variables = unstack(result, i)
    for (path, want), got in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(variables["params"]),
                                 strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=RTOL, atol=ATOL,
                                   err_msg=f"model {i} {jax.tree_util.keystr(path)}")
    for want, got in zip(jax.tree.leaves(constants), jax.tree.leaves(
            {k: v for k, v in variables.items() if k != "params"}), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert abs(result.psnr_unclipped[i] - full_psnr) < PSNR_DB


CASES = {
    # name: (config, image) of a model that differs from the base one in that respect
    "seed": (dataclasses.replace(BASE, seed=1), image_a),
    "lr": (dataclasses.replace(BASE, lr=3e-4), image_a),
    "omega0": (dataclasses.replace(BASE, model=model_config(base=BASE.model, omega0=20.0)), image_a),
    "image": (BASE, image_b),
}


@pytest.fixture(scope="module")
def sweeps_under_test() -> dict:
    """Two sweeps: the base model and the seed, lr and omega0 variants on one shared image (4 models), and
    the base config on two different images (2 models, one image each)."""
    shared = fit_many([BASE, *(CASES[c][0] for c in ("seed", "lr", "omega0"))], image_a(), progress=False,
                      eval_every=BASE.steps)
    per_image = fit_many([BASE, BASE], np.stack([image_a(), image_b()]), progress=False, eval_every=BASE.steps)
    return {"shared": shared, "per_image": per_image}


@pytest.mark.parametrize("case", ["base", *CASES])
def test_vmapped_sweep_equals_single_fits(sweeps_under_test, case):
    """Each model of a sweep ends with the parameters and PSNR that ``fit`` gives its config and image."""
    if case in ("base", "seed", "lr", "omega0"):
        result, i = sweeps_under_test["shared"], ["base", "seed", "lr", "omega0"].index(case)
    else:
        result, i = sweeps_under_test["per_image"], 1
    config, image = (BASE, image_a) if case == "base" else CASES[case]
    assert result.steps_run == BASE.steps and (result.diverged_step == -1).all()
    assert result.history.loss.shape == (BASE.steps, result.num_models)
    assert result.history.eval_steps.tolist() == [10, 20]
    assert_matches_fit(result, i, config, image(), case)


def test_unstacked_model_renders_like_a_single_fit(sweeps_under_test):
    result = sweeps_under_test["shared"]
    recon = render(result.model.apply, unstack(result, 1), SIZE, SIZE)  # shared apply, model 1's variables
    every = render(result.model.apply, result.variables, SIZE, SIZE, stacked=True)
    np.testing.assert_allclose(every[1], recon, atol=1e-6)
    assert float(psnr(np.clip(recon, 0, 1), image_a())) == pytest.approx(result.psnr[1], abs=1e-3)
    omegas = np.asarray(result.state.constants["constants"]["layer_0"]["omega0"]).tolist()
    assert omegas == [30.0, 30.0, 30.0, 20.0]  # the hyperparameter travels with each model's variables


def test_learning_rate_lives_in_optimizer_state():
    """The peak lr is a state leaf (a model axis once stacked), not a constant of the update function."""
    state = build_optimizer(BASE, 0.25, flat=True).init({"w": np.zeros(3, np.float32)})
    assert float(state[-1].lr) == 0.25


def test_incompatible_configs_are_refused():
    image = image_a()
    wide = dataclasses.replace(BASE, model=model_config(base=BASE.model, width=32))
    with pytest.raises(InputError, match=r"parameter shapes.*model\.width 32 vs 16 of model 0"):
        fit_many([BASE, wide], image, progress=False)
    relu = FitConfig(model=model_config("relu_pe", width=16, depth=1, num_frequencies=4), steps=5)
    tanh = dataclasses.replace(relu, model=model_config(base=relu.model, activation="tanh"))
    with pytest.raises(InputError, match=r"computes differently.*layer_options\.activation 'tanh' vs 'relu'"):
        fit_many([relu, tanh], image, progress=False)
    with pytest.raises(InputError, match="share steps"):
        fit_many([BASE, dataclasses.replace(BASE, steps=30)], image, progress=False)
    with pytest.raises(InputError, match="one size"):
        fit_many(BASE, [image, synthetic_image(SIZE, SIZE + 2)], progress=False)
    with pytest.raises(InputError, match="ambiguous"):
        fit_many(BASE, image, seeds=[0, 1], lrs=[1e-3, 1e-4, 1e-5], progress=False)


def test_diverging_model_does_not_stop_the_others():
    """A NaN target makes model 1's loss NaN from step 1: it is rolled back and flagged, model 0 trains on."""
    bad = image_a().copy()
    bad[3, 4, 1] = np.nan
    config = dataclasses.replace(BASE, batch_size=None)
    result = fit_many(config, np.stack([image_a(), bad]), progress=False)
    assert result.diverged_step.tolist() == [-1, 1]
    assert np.asarray(result.state.step).tolist() == [20, 20]  # the step counter stays common
    assert np.isfinite(result.psnr[0]) and result.psnr[0] > 12 and np.isnan(result.psnr[1])
    initial, _ = init_states(result.configs[1:])  # model 1 keeps its last finite state: the initial one
    for got, want in zip(jax.tree.leaves(unstack(result, 1)["params"]), jax.tree.leaves(initial.params), strict=True):
        np.testing.assert_array_equal(np.asarray(got), want[0])


def test_interrupted_sweep_continues_to_the_same_result(sweeps_under_test):
    """Ctrl-C after the first chunk raises SweepInterrupted with the stacked state at step 10; ``fit_many(state=)``
    continues every model from there and ends where the uninterrupted sweep did."""
    uninterrupted = sweeps_under_test["shared"]

    def interrupt(info):
        raise KeyboardInterrupt

    configs = uninterrupted.configs
    with pytest.raises(SweepInterrupted) as caught:
        fit_many(configs, image_a(), progress=False, callbacks=[interrupt])
    assert np.asarray(caught.value.state.step).tolist() == [10] * len(configs)
    rest = fit_many(configs, image_a(), state=caught.value.state, progress=False, eval_every=BASE.steps)
    assert rest.steps_run == 10 and rest.history.steps.tolist() == list(range(11, 21))
    assert rest.compile_s < 0.2  # the same kind of sweep as the fixture's: its compiled chunk is reused
    for a, b in zip(jax.tree.leaves(uninterrupted.state.params), jax.tree.leaves(rest.state.params), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6, atol=1e-7)


def test_sweep_grid_is_the_cartesian_product():
    configs, labels = sweep_grid(BASE, seed=[0, 1], lr=[1e-3, 1e-4], omega0=[20.0])
    assert labels == [{"seed": s, "lr": lr, "omega0": 20.0} for s in (0, 1) for lr in (1e-3, 1e-4)]
    assert [(c.seed, c.lr, c.model.layer_options["omega0"]) for c in configs] == [
        (s, lr, 20.0) for s in (0, 1) for lr in (1e-3, 1e-4)]
    with pytest.raises(InputError, match="no values"):
        sweep_grid(BASE, lr=[])


def test_load_cifar10_batch(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": data, b"labels": [4, 5, 6]}, f)
    images, labels = load_cifar10_batch(tmp_path, count=2, start=1)  # the folder holding data_batch_1
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.float32 and labels.tolist() == [5, 6]
    # channel-major rows: red plane first, pixel (row 1, column 2) at offset 32 + 2 of each plane
    assert images[0, 1, 2].tolist() == pytest.approx((data[1, [34, 1024 + 34, 2048 + 34]] / 255.0).tolist())
    with pytest.raises(InputError, match="not found"):
        load_cifar10_batch(tmp_path / "missing")
    with pytest.raises(InputError, match="holds 3 images"):
        load_cifar10_batch(tmp_path, count=5)


def test_cli_writes_table_and_figure(tmp_path, tiny_png):
    out = tmp_path / "run"
    code, stdout, stderr = run_script(
        "sweep.py", "--image", tiny_png, "--model", "siren", "--width", "16", "--depth", "1", "--seeds", "2",
        "--omega0", "20,30", "--steps", "10", "--steps-per-call", "5", "--batch-size", "full", "--max-size", "16",
        "--no-progress", "--out", out)
    assert code == 0, stderr
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].startswith("model,seed,omega0,lr,psnr,psnr_unclipped,ssim") and len(rows) == 5
    assert (out / "sweep.png").stat().st_size > 0 and "| model |" in stdout
    # shape-changing sweeps are refused in one line (exit 2) before anything is written
    code, _, stderr = run_script("sweep.py", "--image", tiny_png, "--model", "siren", "--sweep",
                                            "width=16,32", "--out", tmp_path / "bad")
    assert code == 2 and "model.width" in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "bad").exists()


SHARDED_SCRIPT = textwrap.dedent("""
    import os
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    import json, dataclasses
    import jax, numpy as np
    from jax.sharding import PartitionSpec as P
    from inr_utils.config import FitConfig
    from inr_utils.sweeps import fit_many
    from model_components.inrs import model_config

    base = FitConfig(model=model_config("siren", width=16, depth=1), steps=10, batch_size=64, lr=1e-3,
                     lr_schedule="constant", steps_per_call=5)
    y, x = np.meshgrid(np.linspace(0, 1, 16), np.linspace(0, 1, 16), indexing="ij")
    images = np.stack([np.stack([x, y, 0.5 + 0.4 * np.sin(6 * (x + k * y))], -1) for k in range(6)]).astype("f4")
    lrs = [1e-3, 3e-4] * 3
    seen = []  # the stacked state during training: 6 models padded to 8, 2 a device
    record = lambda info: seen.append(jax.tree.leaves(info.state.params)[0])
    many = fit_many(base, images, seeds=range(6), lrs=lrs, progress=False, callbacks=[record])
    one = fit_many(base, images, seeds=range(6), lrs=lrs, progress=False, devices=jax.devices()[:1])
    leaf = seen[-1]
    diff = lambda a, b: max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
                            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    print(json.dumps({
        "devices": len(jax.devices()), "num_devices": many.num_devices, "models": many.num_models,
        "padded_rows": leaf.shape[0], "sharding_devices": len(leaf.sharding.device_set),
        "spec": str(leaf.sharding.spec), "shard_rows": sorted({s.data.shape[0] for s in leaf.addressable_shards}),
        "param_diff": diff(many.state.params, one.state.params),
        "psnr_diff": float(np.max(np.abs(many.psnr - one.psnr))),
        "one_devices": one.num_devices,
    }))
""")


def test_model_axis_is_sharded_over_devices():
    """With 4 (fake CPU) devices, 6 models are padded to 8 and the stacked parameters live 2 models a device;
    the padding is dropped, and the results equal the 1-device run of the same sweep."""
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    xla_flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"  # conftest's kept
    env = {**os.environ, "PYTHONPATH": python_path, "XLA_FLAGS": xla_flags}
    proc = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert facts["devices"] == 4 and facts["num_devices"] == 4 and facts["one_devices"] == 1
    assert facts["models"] == 6 and facts["padded_rows"] == 8 and facts["sharding_devices"] == 4
    assert facts["spec"] == str(jax.sharding.PartitionSpec("models")) and facts["shard_rows"] == [2]
    assert facts["param_diff"] < 1e-5 and facts["psnr_diff"] < PSNR_DB


@pytest.mark.parametrize("preset", ["siren", "ffn", "wire", "hashgrid"])
def test_compiled_inits_equal_op_by_op_init(preset):
    # fit's cached init program, the sweep's vmapped one and create_train_state run eagerly (op by op, as fit
    # once did) give the same parameters bit for bit (uniform and normal draws, complex WIRE weights, hash tables)
    from inr_utils.fitting import initial_state, with_out_dim
    from inr_utils.training import create_train_state
    from model_components.inrs import build_model

    config = with_out_dim(FitConfig(model=model_config(preset, dtype="float32"), steps=10, seed=5), 3)
    _, optimizer, state = initial_state(config, 3)
    op_by_op = create_train_state(build_model(config.model), optimizer, jax.random.split(jax.random.key(5))[0],
                                  config.model.in_dim)  # eager: JAX compiles each random draw on its own
    stacked, _ = init_states([config, dataclasses.replace(config, seed=6)])
    for got, want, swept in zip(jax.tree.leaves(state.params), jax.tree.leaves(op_by_op.params),
                                jax.tree.leaves(stacked.params), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        np.testing.assert_array_equal(np.asarray(swept)[0], np.asarray(want))


def test_first_chunk_compiles_during_init(monkeypatch):
    """The first chunk and the evaluator are compiled while the models initialise; the training loop then uses
    that executable and compiles nothing (a sweep of a new kind, so no cached program helps)."""
    loop_compile_s = []
    real_train_many = sweeps.train_many

    def spy(*args, **kwargs):
        result = real_train_many(*args, **kwargs)
        loop_compile_s.append(result.compile_s)
        return result

    monkeypatch.setattr(sweeps, "train_many", spy)
    clear_program_cache()
    config = dataclasses.replace(BASE, steps=10, steps_per_call=10, model=model_config("siren", width=8, depth=1))
    result = fit_many(config, image_a(), seeds=[0, 1], progress=False)
    assert loop_compile_s == [0.0] and result.compile_s > 0
    assert 0 < result.train_s < result.wall_s and result.init_s < result.wall_s


def test_default_models_per_block():
    assert default_models_per_block(1024, 32) == 4  # CIFAR: 128 KiB a model
    assert default_models_per_block(4096, 32) == 2  # at least 2, so products stay batched
    assert default_models_per_block(65536, 256) == 2


CPU_CORES_SCRIPT = textwrap.dedent("""
    import json
    import jax
    from inr_utils.devices import use_cpu_cores
    first = use_cpu_cores(3)
    again = use_cpu_cores(2)  # the count is chosen already
    devices = len(jax.devices("cpu"))
    late = use_cpu_cores(5)  # backends are up: too late
    print(json.dumps({"first": first, "again": again, "devices": devices, "late": late,
                      "after": len(jax.devices("cpu"))}))
""")


def test_use_cpu_cores_splits_the_host_before_jax_starts():
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONPATH"] = python_path
    proc = subprocess.run([sys.executable, "-c", CPU_CORES_SCRIPT], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert facts == {"first": True, "again": False, "devices": 3, "late": False, "after": 3}
