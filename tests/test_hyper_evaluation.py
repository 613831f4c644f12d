"""Using a trained hypernetwork (hypernetwork_utils.evaluation / runs): encode + render equal the model's own
apply, renders at other sizes equal the INR on that grid, params restored without the optimizer state, a run
folder loaded back, the metrics on known answers (perfect reconstruction, jitter, PCA of two clusters, vmapped =
looped), render.py on a checkpoint of an older optimizer layout, and evaluate_hypernetwork.py end to end.

The library tests use a stand-in hypernetwork (``tiny_eval``, registered while they run): an encoder Dense from the
flattened image to a latent added inside a small sine INR whose other weights are shared by every image; the
scripts run a real LA-INR trained for a few steps by train_hypernetwork.py."""

from __future__ import annotations

import dataclasses
import functools
import json
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import run_scripts_in_one_process

from hypernetwork_utils import evaluation as ev
from hypernetwork_utils.runs import load_run
from inr_utils.checkpoints import DamagedCheckpointWarning, restore_checkpoint, restore_params, save_checkpoint
from inr_utils.errors import InputError
from inr_utils.grids import grid
from inr_utils.training import TrainState
from model_components.hypernetworks import HYPERNETWORKS, build_hypernetwork, hyper_config

ROOT = Path(__file__).resolve().parents[1]


class TinyINR(nn.Module):
    """``sigmoid(W2 sin(3 W1 x + b1 + latent) + b2)``: smooth, values in (0, 1)."""

    hidden: int = 8
    channels: int = 3

    @nn.compact
    def __call__(self, coords: jax.Array) -> jax.Array:
        latent = self.param("latent", nn.initializers.zeros, (self.hidden,))
        h = jnp.sin(3.0 * nn.Dense(self.hidden, name="first")(coords) + latent)
        return nn.sigmoid(nn.Dense(self.channels, name="out")(h))


class TinyHyper(nn.Module):
    """Image -> latent (a Dense of the flat image); the INR's other weights are shared (and repeated per image)."""

    hidden: int = 8
    channels: int = 3

    def inr(self) -> nn.Module:
        return TinyINR(self.hidden, self.channels, parent=None)  # a free module, also inside methods

    def setup(self) -> None:
        self.encoder = nn.Dense(self.hidden)
        self.base = self.param("base", lambda key: self.inr().init(key, jnp.zeros((1, 2)))["params"])

    def encode(self, images: jax.Array) -> dict:
        latent = self.encoder(images.reshape(images.shape[0], -1))
        batch = images.shape[0]
        params = jax.tree_util.tree_map(lambda p: jnp.broadcast_to(p, (batch, *p.shape)), dict(self.base))
        return {"params": {**params, "latent": latent}}

    def __call__(self, images: jax.Array, coords: jax.Array) -> jax.Array:
        axes = (0, 0 if coords.ndim == 3 else None)
        return jax.vmap(self.inr().apply, in_axes=axes)(self.encode(images), coords)


@dataclasses.dataclass(frozen=True)
class TinyOptions:
    hidden: int = 8

    def validate(self, config) -> None:
        if self.hidden <= 0:
            raise ValueError(f"hidden must be positive, got {self.hidden}")

    def build(self, config) -> nn.Module:
        return TinyHyper(self.hidden, config.channels)


def register() -> None:
    """Registers the stand-in hypernetwork."""
    if "tiny_eval" not in HYPERNETWORKS:
        HYPERNETWORKS.register("tiny_eval")(TinyOptions)


@pytest.fixture(scope="module", autouse=True)
def stand_in_registered():
    """The stand-in is registered while this module's tests run only, so that tests of every registered
    hypernetwork in other modules (same worker) never meet it."""
    register()
    yield
    HYPERNETWORKS._entries.pop("tiny_eval", None)  # the registry has no public removal: user code never needs it


@functools.lru_cache
def tiny(size=(16, 16), channels=3, seed=0, count=2):
    """Config, module, variables and ``count`` random images of the stand-in (jitted init: eager is slow)."""
    config = hyper_config("tiny_eval", image_size=size, channels=channels)
    model = build_hypernetwork(config)
    images = np.random.default_rng(seed).uniform(size=(count, *size, channels)).astype(np.float32)
    variables = jax.jit(model.init)(jax.random.key(seed), images, grid(size).reshape(-1, 2))
    return config, model, variables, images


def write_run(folder: Path, config, variables, data: dict, steps=(5,)) -> Path:
    """A run folder as train_hypernetwork.py writes it (config.json + Orbax checkpoints with an Adam state)."""
    folder.mkdir(parents=True)
    params = variables["params"]
    constants = {k: v for k, v in variables.items() if k != "params"}
    run_config = {"hypernetwork": config.to_dict(), "training": {"steps": max(steps)},
                  "data": {"image_size": list(config.image_size), **data}}
    (folder / "config.json").write_text(json.dumps(run_config))
    for step in steps:
        state = TrainState(step=jnp.asarray(step, jnp.int32), params=params, constants=constants,
                           opt_state=optax.adam(1e-3).init(params))
        save_checkpoint(folder / "checkpoints", state, run_config)
    return folder


def assert_trees_equal(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ------------------------------------------------------------------------------------------ encode / render


def test_encode_render_reconstruct_equal_apply():
    """5 images in groups of 2 (the last padded) and 100-point chunks (256 points: the last padded) give the
    model's own ``apply`` on the pixel grid."""
    _, model, variables, images = tiny(count=5)
    coords = grid((16, 16)).reshape(-1, 2)
    expected = np.asarray(model.apply(variables, images, coords)).reshape(5, 16, 16, 3)
    inr = ev.encode(model, variables, images, batch_size=2)
    assert jax.tree_util.tree_leaves(inr)[0].shape[0] == 5
    np.testing.assert_allclose(ev.render(model, inr, (16, 16), batch_size=2, chunk_points=100), expected, atol=1e-6)
    np.testing.assert_allclose(ev.reconstruct(model, variables, images, batch_size=2, chunk_points=100), expected,
                               atol=1e-6)
    uint8 = np.round(images * 255).astype(np.uint8)  # uint8 input is read as /255
    np.testing.assert_allclose(ev.reconstruct(model, variables, uint8), ev.reconstruct(model, variables,
                                                                                      uint8 / 255.0), atol=1e-6)


REAL = {"weights_lowrank": ("weights", {"mode": "lowrank", "latent_dim": 16, "inr_width": 16, "inr_depth": 1}),
        "transinr": ("transinr", {"dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0, "n_groups": 4,
                                  "inr_width": 16, "inr_depth": 2, "pe_frequencies": 4}),
        "lainr": ("lainr", {"patch_size": 4, "num_lp": 16, "dim": 16, "depth": 1, "heads": 2, "decoder_width": 16,
                            "decoder_heads": 1, "num_frequencies": 4, "pe_frequencies": 2})}


@pytest.mark.parametrize("name", sorted(REAL))
def test_registered_hypernetworks_encode_render_and_embed(name):
    """The library's own hypernetworks (small): grouped encode + render equal apply; latents come out flat."""
    architecture, options = REAL[name]
    config = hyper_config(architecture, image_size=(16, 16), channels=3, **options)
    model = build_hypernetwork(config)
    images = np.random.default_rng(0).uniform(size=(3, 16, 16, 3)).astype(np.float32)
    coords = grid((16, 16)).reshape(-1, 2)
    variables = jax.jit(model.init)(jax.random.key(0), images, coords)
    expected = np.asarray(jax.jit(model.apply)(variables, images, coords)).reshape(3, 16, 16, 3)
    np.testing.assert_allclose(ev.reconstruct(model, variables, images, batch_size=2), expected, atol=2e-5)
    latents = ev.latent_features(model, variables, images, batch_size=2)
    assert latents.shape[0] == 3 and np.all(np.isfinite(latents)) and latents.std(axis=0).max() > 0


def test_render_at_other_sizes_is_the_inr_on_that_grid():
    """INR variables built directly (no hypernetwork): the 2x (and a non-square) render is the INR evaluated on
    that grid, image by image."""
    _, model, _, _ = tiny()
    inr = model.inr()
    singles = [inr.init(jax.random.key(k), jnp.zeros((1, 2))) for k in range(3)]
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *singles)
    for shape in ((32, 32), (12, 20)):
        out = ev.render(model, stacked, shape, batch_size=2, chunk_points=64)
        assert out.shape == (3, *shape, 3)
        for k, variables in enumerate(singles):
            np.testing.assert_allclose(out[k], np.asarray(inr.apply(variables, grid(shape))), atol=1e-6)


def test_vmapped_evaluation_equals_a_loop_and_speed_numbers():
    _, model, variables, images = tiny(count=4)
    inr_vars = ev.encode(model, variables, images)
    coords = jax.random.uniform(jax.random.key(3), (4, 50, 2), minval=-1, maxval=1)  # one set per image
    out = ev.evaluate_inr(model, inr_vars, coords, batch_size=3, chunk_points=16)
    for b in range(4):
        one = jax.tree_util.tree_map(lambda leaf, b=b: leaf[b], inr_vars)
        np.testing.assert_allclose(out[b], np.asarray(model.inr().apply(one, coords[b])), atol=1e-6)
    speed = ev.inr_speed(model, inr_vars, (8, 8), repeats=1)
    assert speed["images"] == 4 and speed["points"] == 64
    assert speed["vmapped_s"] > 0 and speed["loop_s"] > 0 and speed["speedup"] == pytest.approx(
        speed["loop_s"] / speed["vmapped_s"])
    # one image's flops grow with its pixel count (4x the pixels: about 4x, less the per-image part)
    quarter = ev.inr_speed(model, inr_vars, (4, 4), repeats=1)["flops_per_image"]
    assert quarter > 0 and 3.0 < speed["flops_per_image"] / quarter <= 4.0


def test_compiled_flops_of_a_matrix_product():
    a, b = jnp.ones((8, 16)), jnp.ones((16, 4))
    assert ev.compiled_flops(jax.jit(jnp.matmul).lower(a, b).compile()) == 2 * 8 * 16 * 4


def test_bicubic_keeps_constants_and_size():
    images = np.full((2, 8, 8, 3), 0.25, np.float32)
    out = ev.bicubic(images, (32, 24))
    assert out.shape == (2, 32, 24, 3)
    np.testing.assert_allclose(out, 0.25, atol=1e-5)


# ------------------------------------------------------------------------------------------ checkpoints, runs


def test_restore_params_without_the_optimizer_state(tmp_path):
    """Params and constants round trip; a checkpoint of another optimizer (whose state another template would
    refuse) still gives them; a damaged newest checkpoint falls back to the older one with a warning."""
    params = {"dense": {"kernel": jnp.arange(6.0).reshape(2, 3), "bias": jnp.ones(3)}, "scale": jnp.asarray(2.0)}
    constants = {"fourier": {"B": jnp.full((2, 4), 0.5)}}
    adam = TrainState(jnp.asarray(3, jnp.int32), params, constants, optax.adam(1e-3).init(params))
    save_checkpoint(tmp_path / "a", adam, {"x": 1})
    restored, restored_constants, step = restore_params(tmp_path / "a", with_step=True)
    assert step == 3
    assert_trees_equal(restored, params)
    assert_trees_equal(restored_constants, constants)

    old = TrainState(jnp.asarray(4, jnp.int32), params, {}, optax.sgd(0.1, momentum=0.9).init(params))
    save_checkpoint(tmp_path / "b", old, {"x": 1})
    with pytest.raises(InputError, match="optimizer state differs"):
        restore_checkpoint(tmp_path / "b", adam)
    restored, restored_constants = restore_params(tmp_path / "b")
    assert_trees_equal(restored, params)
    assert restored_constants == {}

    newer = TrainState(jnp.asarray(9, jnp.int32), jax.tree_util.tree_map(lambda p: p + 1, params), constants,
                       adam.opt_state)
    save_checkpoint(tmp_path / "a", newer, {"x": 1})
    assert_trees_equal(restore_params(tmp_path / "a")[0], newer.params)
    for path in (tmp_path / "a" / "9" / "state").rglob("*"):
        if path.is_file() and path.parent.name == "d":
            path.write_bytes(b"broken")
    with pytest.warns(DamagedCheckpointWarning, match="step 9"):
        restored, _, step = restore_params(tmp_path / "a", with_step=True)
    assert step == 3
    assert_trees_equal(restored, params)
    with pytest.raises(InputError, match="no checkpoint"):
        restore_params(tmp_path / "none")


def test_load_run_gives_the_saved_model(tmp_path):
    config, model, variables, images = tiny()
    run = write_run(tmp_path / "run", config, variables, {"path": "lfw", "val_count": 4, "seed": 0},
                    steps=(5, 10))
    loaded, loaded_config, loaded_variables, run_config = load_run(run)
    assert loaded_config == config and run_config["data"]["val_count"] == 4
    coords = grid((16, 16)).reshape(-1, 2)
    np.testing.assert_allclose(np.asarray(loaded.apply(loaded_variables, images, coords)),
                               np.asarray(model.apply(variables, images, coords)), atol=1e-6)
    assert_trees_equal(load_run(run, step=5)[2], variables)
    with pytest.raises(InputError, match="does not exist"):
        load_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="config.json"):
        load_run(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read"):
        load_run(tmp_path / "empty")


# ------------------------------------------------------------------------------------------ metrics


def test_psnr_ssim_known_answers():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 16, 16, 3)).astype(np.float32)
    np.testing.assert_array_equal(ev.psnr_per_image(x, x), ev.PSNR_CAP_DB)
    np.testing.assert_allclose(ev.ssim_per_image(x, x), 1.0, atol=1e-6)
    shifted = x + np.asarray([0.1, 0.01, 0.0], np.float32)[:, None, None, None]  # mse 1e-2, 1e-4, 0
    np.testing.assert_allclose(ev.psnr_per_image(shifted, x), [20.0, 40.0, ev.PSNR_CAP_DB], atol=1e-3)
    assert ev.ssim_per_image(np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1), x).max() < 0.9
    stats = ev.distribution([1.0, 2.0, 3.0, 4.0])
    assert stats["mean"] == 2.5 and stats["median"] == 2.5 and stats["min"] == 1 and stats["count"] == 4
    assert stats["std"] == pytest.approx(np.std([1, 2, 3, 4]))


def test_jitter_curve():
    """sigma = 0 is the plain reconstruction's PSNR; with images that are the INR's own renders (an encoder
    that ignores the image), PSNR is capped at sigma = 0 and falls as sigma grows (same noise, scaled)."""
    _, model, variables, images = tiny(count=3)
    curve = ev.jitter_psnr(model, variables, images, batch_size=2)
    assert curve.shape == (4, 3)
    plain = ev.psnr_per_image(np.clip(ev.reconstruct(model, variables, images), 0, 1), images)
    np.testing.assert_allclose(curve[0], plain, atol=1e-4)

    params = dict(variables["params"])
    params["encoder"] = {"kernel": jnp.zeros_like(params["encoder"]["kernel"]),
                         "bias": jnp.linspace(-1.0, 1.0, params["encoder"]["bias"].shape[0])}
    fixed = {"params": params}
    own = ev.reconstruct(model, fixed, images)
    curve = ev.jitter_psnr(model, fixed, own, sigmas=(0.0, 0.005, 0.01, 0.02, 0.05))
    assert np.all(curve[0] == ev.PSNR_CAP_DB) and np.all(curve[1] < 80)
    assert np.all(np.diff(curve.mean(axis=1)) < 0), curve.mean(axis=1)
    np.testing.assert_array_equal(curve, ev.jitter_psnr(model, fixed, own, sigmas=(0.0, 0.005, 0.01, 0.02, 0.05)))


def test_pca_separates_two_clusters_and_latents_skip_shared_weights():
    rng = np.random.default_rng(0)
    centre = rng.normal(size=40) * 5
    features = np.concatenate([centre + rng.normal(size=(20, 40)), -centre + rng.normal(size=(20, 40))])
    embedding, explained = ev.pca_2d(features)
    assert embedding.shape == (40, 2) and explained[0] > 0.8 and explained.sum() <= 1 + 1e-9
    first, second = embedding[:20, 0], embedding[20:, 0]
    assert first.min() > second.max() or first.max() < second.min()
    _, model, variables, images = tiny(count=5)
    latents = ev.latent_features(model, variables, images, batch_size=2)
    assert latents.shape == (5, 8)  # only the latent differs between images
    np.testing.assert_allclose(latents, np.asarray(model.apply(variables, images, method="encode")
                                                   ["params"]["latent"]), atol=1e-6)


# ------------------------------------------------------------------------------------------ scripts


def _script(*args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_render_script_renders_a_checkpoint_of_an_older_optimizer_layout(tmp_path):
    """fit_image.py runs of releases before the engine's optimizer saved a plain Adam state; render.py restores
    only the params, so it still renders them (the INR on the grid)."""
    from inr_utils.config import FitConfig
    from inr_utils.training import create_train_state
    from model_components.inrs import build_model, model_config

    config = FitConfig(model=model_config("siren", width=8, depth=1, dtype="float32"))
    model = build_model(config.model)
    state = create_train_state(model, optax.adam(1e-3), jax.random.key(0), 2)
    save_checkpoint(tmp_path / "run" / "checkpoints", state, config.to_dict())
    result = _script("experiments/render.py", tmp_path / "run", "--height", "6", "--width", "10")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["step"] == 0
    from inr_utils.images import load_image

    image = load_image(tmp_path / "run" / "render_6x10.png")
    expected = np.clip(np.asarray(model.apply({"params": state.params, **state.constants}, grid((6, 10)))), 0, 1)
    assert image.shape[:2] == (6, 10)
    np.testing.assert_allclose(image[..., :3], expected, atol=1 / 255 + 1e-6)


#: A small LA-INR trained for 4 steps on 16 LFW faces at 16x16, 8 held out (train_hypernetwork.py flags).
LAINR_RUN = ["--model", "lainr", "--data", "lfw:24", "--image-size", "16", "--steps", "4", "--batch-size", "4",
             "--val-count", "8", "--steps-per-call", "2", "--no-progress", *[f"--set={o}" for o in (
                 "patch_size=4", "num_lp=16", "dim=16", "depth=1", "heads=2", "decoder_width=16", "decoder_heads=1",
                 "num_frequencies=4", "pe_frequencies=2")]]


def test_train_then_evaluate_end_to_end_and_bad_input(tmp_path):
    """A real run (train_hypernetwork.py, LA-INR) evaluated by evaluate_hypernetwork.py: every output, and the
    held-out PSNR equals the one training measured (the same held-out images, the run's split); bad input: one
    line, exit 2, nothing changed."""
    run = tmp_path / "run"
    train = _script("experiments/train_hypernetwork.py", *LAINR_RUN, "--out", run, timeout=300)
    assert train.returncode == 0, train.stderr
    result = _script("experiments/evaluate_hypernetwork.py", run, timeout=300)
    assert result.returncode == 0, result.stderr
    out = run / "eval"
    names = ("eval.json", "psnr.png", "super_resolution.png", "jitter.png", "embedding.png")
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    results = json.loads((out / "eval.json").read_text())
    assert results["images"] == 8 and results["step"] == 4 and results["image_size"] == [16, 16]
    assert len(results["psnr_per_image"]) == 8 and results["psnr"]["count"] == 8
    assert results["psnr"]["mean"] == pytest.approx(json.loads((run / "metrics.json").read_text())["val_psnr"],
                                                    abs=2e-3)
    assert results["jitter"]["sigma"] == list(ev.JITTER_SIGMAS) and len(results["jitter"]["psnr_mean"]) == 4
    assert results["jitter"]["psnr_mean"][0] == pytest.approx(results["psnr"]["mean"], abs=1e-4)
    assert results["speed"]["speedup"] > 0 and "held-out PSNR" in result.stdout

    cases = (((tmp_path / "no_run",), "does not exist"), ((run, "--data", tmp_path / "no_data"), "no_data"),
             ((run, "--count", "0"), "--count"), ((run, "--step", "7"), "no checkpoint of step 7"),
             ((run, "--out", tmp_path / "a_file" / "x"), "cannot create"))
    (tmp_path / "a_file").write_text("x")
    results = run_scripts_in_one_process({str(k): ("evaluate_hypernetwork.py", *args)
                                          for k, (args, _) in enumerate(cases)})  # one process: faster
    for (rc, stdout, stderr), (_, words) in zip(results.values(), cases, strict=True):
        assert rc == 2, stderr
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], stderr
        assert "Traceback" not in stderr and stdout == ""
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # nothing added or removed
