"""Meta-learned initialisation (hypernetwork_utils.meta_learning, meta_run, experiments/meta_learn.py) on a tiny
SIREN and tiny images: the inner loop lowers the loss, the meta-gradient matches finite differences (and the
first-order one its definition), vmapped adaptation equals a loop, a resumed run equals an uninterrupted one, the
script end to end and its bad input."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import run_scripts_in_one_process, write_png

from hypernetwork_utils.meta_learning import (
    MetaConfig,
    adaptation_curves,
    adapted_paths,
    build_meta_model,
    init_meta_params,
    inner_loop,
    make_meta_train_step,
    meta_loss,
    split_adapted,
)
from hypernetwork_utils.meta_run import run_meta_training
from hypernetwork_utils.training import HyperTrainingSettings, image_coords
from inr_utils.checkpoints import restore_params
from inr_utils.training import TrainState

SIZE = 8
TINY_MODEL = {"model": "siren", "width": 16, "depth": 1}


def _images(n: int, seed: int = 0, size: int = SIZE) -> np.ndarray:
    """Smooth random float32 images ``(n, size, size, 3)`` in [0, 1] (a few low frequencies each)."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    out = np.zeros((n, size, size, 3), np.float32)
    for i in range(n):
        for c in range(3):
            a, b, p = rng.uniform(0.5, 3.0, 3)
            out[i, :, :, c] = 0.5 + 0.4 * np.sin(a * x + b * y + p)
    return out


def _setup(adapt: str, **kw):
    meta = MetaConfig(model=TINY_MODEL, adapt=adapt, inner_lr=0.1 if adapt == "all" else 0.3, **kw)
    model = build_meta_model(meta, 3)
    params, constants = init_meta_params(model, meta, jax.random.key(0))
    return meta, model, params, constants


@pytest.mark.parametrize("adapt", ["shifts", "all"])
def test_inner_loop_lowers_the_loss_and_adapts_only_its_leaves(adapt):
    meta, model, params, constants = _setup(adapt)
    target = jnp.asarray(_images(1)[0].reshape(-1, 3))
    adapted, losses = inner_loop(model.apply, params["inr"], constants, params["inner_lr"], image_coords(SIZE, SIZE),
                                 target, 5, adapt)
    assert losses.shape == (6,)
    assert float(losses[-1]) < (0.8 if adapt == "all" else 0.95) * float(losses[0])
    assert np.all(np.diff(np.asarray(losses)) < 0)
    moved = {p for p in adapted_paths(params["inr"], "all")
             if not np.array_equal(_leaf(adapted, p), _leaf(params["inr"], p))}
    assert moved == set(adapted_paths(params["inr"], adapt))
    if adapt == "shifts":
        assert all(p[-1] == "bias" and p[0] != "head" for p in moved) and len(moved) == 2


def _leaf(tree, path):
    for key in path:
        tree = tree[key]
    return np.asarray(tree)


def test_meta_gradient_matches_finite_differences():
    """Second-order meta-gradient (through 2 inner steps) along a random direction vs a central difference of the
    outer loss (parameters in float64); the first-order gradient misses it."""
    with jax.enable_x64(True):
        meta, model, params, constants = _setup("all")
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        images = jnp.asarray(_images(2), jnp.float64)
        coords = image_coords(SIZE, SIZE).astype(jnp.float64)

        def loss(p):
            return meta_loss(model.apply, p, constants, coords, images, 2, "all")[0]

        grads = jax.grad(loss)(params)
        leaves, tree = jax.tree.flatten(params)
        keys = jax.random.split(jax.random.key(1), len(leaves))
        direction = tree.unflatten([jax.random.normal(k, a.shape, jnp.float64)
                                    for k, a in zip(keys, leaves, strict=True)])
        eps = 1e-5
        shifted = lambda s: jax.tree.map(lambda a, d: a + s * eps * d, params, direction)  # noqa: E731
        numeric = (loss(shifted(1.0)) - loss(shifted(-1.0))) / (2 * eps)
        analytic = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction), strict=True))
        assert abs(float(analytic)) > 1e-3
        np.testing.assert_allclose(float(analytic), float(numeric), rtol=1e-3)  # the INR computes in float32
        first = jax.grad(lambda p: meta_loss(model.apply, p, constants, coords, images, 2, "all", True)[0])(params)
        approx = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(first), jax.tree.leaves(direction), strict=True))
        assert abs(float(approx) - float(numeric)) > 1e-2 * abs(float(numeric))  # second order matters here


def test_first_order_gradient_is_its_definition():
    """First-order MAML: the gradient w.r.t. the initialisation is the batch mean of each image's loss gradient at
    its adapted parameters; the second-order one differs."""
    meta, model, params, constants = _setup("all")
    images = jnp.asarray(_images(2))
    coords = image_coords(SIZE, SIZE)
    fo = jax.grad(lambda p: meta_loss(model.apply, p, constants, coords, images, 2, "all", first_order=True)[0])(params)
    expected = []
    for image in images:
        target = image.reshape(-1, 3)
        adapted, _ = inner_loop(model.apply, params["inr"], constants, params["inner_lr"], coords, target, 2, "all")
        expected.append(jax.grad(
            lambda p, t=target: jnp.mean((model.apply({"params": p, **constants}, coords) - t) ** 2))(adapted))
    mean = jax.tree.map(lambda a, b: (a + b) / 2, *expected)
    for got, want in zip(jax.tree.leaves(fo["inr"]), jax.tree.leaves(mean), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    so = jax.grad(lambda p: meta_loss(model.apply, p, constants, coords, images, 2, "all")[0])(params)
    assert not np.allclose(jax.tree.leaves(so["inr"])[0], jax.tree.leaves(fo["inr"])[0], rtol=1e-3)


def test_vmapped_adaptation_equals_a_loop():
    meta, model, params, constants = _setup("shifts")
    images = _images(5)
    coords = image_coords(SIZE, SIZE)
    psnr, recon = adaptation_curves(model, params["inr"], constants, params["inner_lr"], images, 3, "shifts",
                                    keep=(1, 3), batch_size=2)  # groups of 2, the last padded
    _, losses = meta_loss(model.apply, params, constants, coords, jnp.asarray(images), 3, "shifts")
    for i, image in enumerate(images):
        one, one_recon = adaptation_curves(model, params["inr"], constants, params["inner_lr"], image[None], 3,
                                           "shifts", keep=(1, 3), batch_size=2)
        np.testing.assert_allclose(psnr[i], one[0], rtol=1e-5)
        np.testing.assert_allclose(recon[i], one_recon[0], atol=1e-5)
        _, single = inner_loop(model.apply, params["inr"], constants, params["inner_lr"], coords,
                               jnp.asarray(image.reshape(-1, 3)), 3, "shifts")
        np.testing.assert_allclose(losses[i], single, rtol=1e-5)
        np.testing.assert_allclose(psnr[i], -10 * np.log10(np.asarray(single)), rtol=1e-4)
    assert psnr[:, 3].mean() > psnr[:, 0].mean()


def test_outer_steps_improve_the_adapted_fit():
    meta, model, params, constants = _setup("shifts")
    optimizer = optax.adam(3e-3)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, constants=constants,
                       opt_state=optimizer.init(params))
    step = jax.jit(make_meta_train_step(model.apply, meta, optimizer, (SIZE, SIZE)))
    images = jnp.asarray(_images(4))
    first = None
    for _ in range(15):
        state, metrics = step(state, images, jax.random.key(0))
        first = float(metrics["loss"]) if first is None else first
    assert float(metrics["loss"]) < 0.7 * first
    assert set(split_adapted(params["inr"], "shifts")) == set(state.params["inner_lr"])


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("meta_images")
    for i, image in enumerate(_images(12, seed=3, size=32)):
        write_png(folder / f"img{i:02d}.png", (image * 255).round().astype(np.uint8))
    return folder


def test_resume_equals_uninterrupted(image_folder, tmp_path):
    meta = MetaConfig(model=TINY_MODEL, adapt="shifts", inner_steps=2, inner_lr=0.3)
    # a constant lr (final fraction 1): the schedule's horizon, fixed by the first run's length, plays no part
    settings = HyperTrainingSettings(batch_size=4, lr=1e-3, warmup_epochs=0.0, steps=4, final_lr_fraction=1.0,
                                     jitter=0.0, steps_per_call=2, checkpoint_every=0, eval_every=0, val_count=2)
    whole = run_meta_training(meta, str(image_folder), settings, tmp_path / "whole", progress=False)
    half = HyperTrainingSettings.from_dict({**settings.to_dict(), "steps": 2})
    run_meta_training(meta, str(image_folder), half, tmp_path / "split", progress=False)
    resumed = run_meta_training(None, None, None, tmp_path / "split", resume=True, progress=False,
                                overrides={"steps": 4})
    a, _, step_a = restore_params(tmp_path / "whole" / "checkpoints", with_step=True)
    b, _, step_b = restore_params(tmp_path / "split" / "checkpoints", with_step=True)
    assert step_a == step_b == 4
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    assert whole["psnr_at"] == resumed["psnr_at"]
    history = (tmp_path / "split" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 4


def test_script_end_to_end_and_bad_input(image_folder, tmp_path):
    run = tmp_path / "run"
    results = run_scripts_in_one_process({
        "train": ("meta_learn.py", "--data", image_folder, "--set", "width=16", "--set", "depth=1", "--steps", 3,
                  "--batch-size", 4, "--val-count", 2, "--inner-steps", 2, "--inner-lr", 0.3, "--steps-per-call", 3,
                  "--out", run, "--no-progress"),
        "evaluate": ("meta_learn.py", "--evaluate", run, "--images", image_folder, "--out", tmp_path / "eval"),
        "missing": ("meta_learn.py", "--data", tmp_path / "nowhere", "--out", tmp_path / "x"),
        "images_alone": ("meta_learn.py", "--images", image_folder),
        "bad_adapt": ("meta_learn.py", "--data", image_folder, "--adapt", "weights"),
    }, timeout=300)
    code, out, err = results["train"]
    assert code == 0, err
    metrics = json.loads(out.strip().splitlines()[-1])
    assert metrics["steps"] == 3 and set(metrics["psnr_at"]) == {"meta", "random", "random_best_lr"}
    assert set(metrics["psnr_at"]["meta"]) == {"0", "1", "3", "10"}
    for name in ("config.json", "metrics.json", "history.csv", "adaptation.json", "adaptation.png"):
        assert (run / name).is_file(), name
    code, out, err = results["evaluate"]
    assert code == 0, err
    report = json.loads((tmp_path / "eval" / f"adaptation_{image_folder.name}.json").read_text())
    assert report["images"] == 12 and len(report["curves_mean_psnr"]["meta"]) == 11
    for name in ("missing", "images_alone", "bad_adapt"):
        code, out, err = results[name]
        assert code == 2, (name, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (name, err)
    assert "nowhere" in results["missing"][2]
    assert not (tmp_path / "x").exists()
