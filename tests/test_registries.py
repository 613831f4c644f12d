"""Registries (layers, encodings, activations, models, presets, samplers): explicit lists, smoke tests of every
entry, configs saved before architectures were named, option types, and where presets live."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inr_utils.config import FitConfig
from inr_utils.errors import InputError
from inr_utils.presets import TRAINING_PRESETS
from inr_utils.samplers import SAMPLERS, batch_samplers, signal_to_data
from model_components import catalog
from model_components.catalog import ACTIVATIONS, ENCODINGS, LAYERS
from model_components.inrs import CONVENTIONS, MODELS, ModelConfig, build_model, model_config
from model_components.mlp import MLPOptions
from model_components.presets import MODEL_PRESETS

LEGACY = json.loads((Path(__file__).parent / "data" / "legacy_model_configs.json").read_text())

# ------------------------------------------------------------------------------------------ explicit lists


def test_registries_are_complete_whatever_was_imported_first():
    # a fresh interpreter importing only the catalog sees every layer, encoding and preset
    code = ("from model_components.catalog import ENCODINGS, LAYERS; "
            "from model_components.presets import MODEL_PRESETS; "
            "print(LAYERS.names(), ENCODINGS.names(), MODEL_PRESETS.names())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str((LAYERS.names(), ENCODINGS.names(), MODEL_PRESETS.names())).replace("(", "").replace(
        ")", "").replace("], [", "] [")
    assert "gauss" in LAYERS and "hashgrid" in ENCODINGS and "hashgrid" in MODEL_PRESETS


def test_registries_live_in_the_catalog_only():
    from model_components import encodings, layers

    assert not hasattr(layers, "LAYERS") and not hasattr(encodings, "ENCODINGS")
    assert layers.ACTIVATIONS is catalog.ACTIVATIONS  # the activations are defined next to get_activation


def test_training_presets_live_in_inr_utils():
    import model_components.presets as mc_presets

    assert not hasattr(mc_presets, "PRESET_TRAINING") and not hasattr(mc_presets, "register_preset")
    assert set(TRAINING_PRESETS) == set(MODEL_PRESETS)  # every architecture preset has an entry (maybe empty)
    assert TRAINING_PRESETS["siren"] == {"lr": 1e-4} and TRAINING_PRESETS["hashgrid"]["steps"] == 500
    assert all("lr" not in fields for _, fields in MODEL_PRESETS.items())
    assert FitConfig.from_dict({"model": "gauss"}).lr == TRAINING_PRESETS["gauss"]["lr"]


def test_unknown_names_list_the_registry():
    for registry, bad in ((LAYERS, "conv"), (ENCODINGS, "hash"), (ACTIVATIONS, "relux"), (MODELS, "cnn"),
                          (SAMPLERS, "stratified"), (MODEL_PRESETS, "nosuch")):
        with pytest.raises(ValueError) as err:
            registry[bad]
        assert bad in str(err.value) and all(name in str(err.value) for name in registry.names())
    with pytest.raises(ValueError, match="unknown architecture 'cnn'; choose one of: local_global, mlp"):
        model_config("siren", architecture="cnn")


# ------------------------------------------------------------------------------------------ smoke tests


@pytest.mark.parametrize("name", LAYERS.names())
def test_every_layer_builds_and_runs(name):
    layer = LAYERS[name](8, is_first=True)
    x = jnp.linspace(-1, 1, 12, dtype=jnp.float32).reshape(4, 3)
    variables = layer.init(jax.random.key(0), x)
    y = layer.apply(variables, x)
    assert y.shape == (4, 8) and bool(jnp.all(jnp.isfinite(jnp.abs(y))))


@pytest.mark.parametrize("name", ENCODINGS.names())
@pytest.mark.parametrize("d", [1, 2, 3])
def test_every_encoding_builds_and_runs(name, d):
    encoding = ENCODINGS[name]()
    coords = jnp.linspace(-0.9, 0.9, 4 * d, dtype=jnp.float32).reshape(4, d)
    if name == "hashgrid" and d == 1:
        with pytest.raises(ValueError, match="2-D or 3-D"):
            encoding.init(jax.random.key(0), coords)
        return
    out = encoding.apply(encoding.init(jax.random.key(0), coords), coords)
    assert out.shape == (4, encoding.output_dim(d)) and bool(jnp.all(jnp.isfinite(out)))


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_every_activation_runs(name):
    x = jnp.linspace(-3, 3, 7)
    y = ACTIVATIONS[name](x)
    assert y.shape == x.shape and bool(jnp.all(jnp.isfinite(y)))


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("d", [1, 2, 3])
def test_every_architecture_builds_with_its_default_options(name, d):
    config = ModelConfig(architecture=name, options=MODELS[name](), in_dim=d, out_dim=2, dtype="float32").validate()
    model = build_model(config)
    coords = jnp.zeros((3, 5, d), jnp.float32)
    out = model.apply(model.init(jax.random.key(0), coords[0]), coords)
    assert out.shape == (3, 5, 2) and out.dtype == jnp.float32


@pytest.mark.parametrize("name", MODEL_PRESETS.names())
def test_every_preset_builds_for_1d_and_3d_coords(name):
    for d in (1, 3):
        config = model_config(name, width=8, depth=1, in_dim=d, out_dim=1, dtype="float32")
        model = build_model(config)
        coords = jnp.linspace(-0.5, 0.5, 4 * d, dtype=jnp.float32).reshape(4, d)
        if name == "hashgrid" and d == 1:
            with pytest.raises(ValueError, match="2-D or 3-D"):
                model.init(jax.random.key(0), coords)
            continue
        out = model.apply(model.init(jax.random.key(0), coords), coords)
        assert out.shape == (4, 1) and bool(jnp.all(jnp.isfinite(out)))


@pytest.mark.parametrize("name", SAMPLERS.names())
@pytest.mark.parametrize("shape", [(16, 1), (2, 4, 4, 3)])
def test_every_sampler_runs_on_1d_and_3d_signals(name, shape):
    data = signal_to_data(np.random.default_rng(0).uniform(size=shape).astype(np.float32))
    kwargs = {"batch_size": 5} if name in batch_samplers() else {}
    for jitter in (False, True):
        coords, values = jax.jit(SAMPLERS[name](**kwargs, jitter=jitter))(data, jax.random.key(1))
        n = 5 if kwargs else data.coords.shape[0]
        assert coords.shape == (n, len(shape) - 1) and values.shape == (n, shape[-1])
        assert bool(jnp.all(jnp.abs(coords) <= 1.0))


# ------------------------------------------------------------------------------------------ models as a kind


@dataclasses.dataclass(frozen=True)
class _LinearOptions:
    """A toy architecture: one affine map of the coordinates."""

    scale: float = 1.0

    def validate(self, config: ModelConfig) -> None:
        if self.scale <= 0:
            raise ValueError(f"scale must be positive, got {self.scale}")

    def build(self, config: ModelConfig) -> nn.Module:
        return nn.Dense(config.out_dim, kernel_init=nn.initializers.constant(self.scale))


def test_a_new_architecture_registers_in_one_place(monkeypatch):
    monkeypatch.setitem(MODELS._entries, "linear", _LinearOptions)
    config = model_config("linear", scale=2.0, in_dim=3, out_dim=1)  # from the architecture's defaults
    assert config.architecture == "linear" and config.options == _LinearOptions(2.0)
    assert config.to_dict() == {"model": "linear", "architecture": "linear", "scale": 2.0, "out_dim": 1, "in_dim": 3,
                                "dtype": "auto", "conventions": CONVENTIONS}
    assert model_config(architecture="linear", scale=2.0, in_dim=3, out_dim=1) == config
    # from a preset of another architecture: the options restart from the new architecture's defaults
    assert model_config("siren", architecture="linear").options == _LinearOptions()
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    model = build_model(config)
    out = model.apply(model.init(jax.random.key(0), jnp.ones((1, 3))), jnp.ones((2, 3)))
    np.testing.assert_allclose(np.asarray(out), 6.0)
    with pytest.raises(ValueError, match="scale must be a number"):
        model_config("relu_pe", architecture="linear", scale="big")
    with pytest.raises(ValueError, match="scale must be positive"):
        model_config("relu_pe", architecture="linear", scale=-1)
    with pytest.raises(ValueError, match="width"):  # the MLP's options are not the toy's
        model_config("relu_pe", architecture="linear", width=3)


def test_config_names_an_architecture_and_its_options():
    config = model_config("siren", omega0=20, width=128)
    assert config.architecture == "mlp" and isinstance(config.options, MLPOptions)
    assert config.width == config.options.width == 128  # options read as attributes
    assert config.layer_options == {"omega0": 20} and config.first_layer_options == {"omega0": 20}
    saved = config.to_dict()  # flat: the fields, then the options
    assert saved == {"model": "siren", "architecture": "mlp", **dataclasses.asdict(config.options), "out_dim": 3,
                     "in_dim": 2, "dtype": "float32", "conventions": CONVENTIONS}
    assert ModelConfig.from_dict(saved) == config
    nested = dataclasses.asdict(config)  # {"options": {...}} nested, as dataclasses.asdict writes it
    assert nested["options"]["width"] == 128 and ModelConfig.from_dict(nested) == config
    with pytest.raises(AttributeError):
        config.no_such_option  # noqa: B018
    with pytest.raises(ValueError, match="must be a MLPOptions"):
        ModelConfig(options={"width": 3}).validate()


# ------------------------------------------------------------------------------------------ saved configs


def _old_conventions(config: dict) -> dict:
    """What a config saved before issue 14's conventions means today: NeRF PE with 2^k pi, Fourier sigma doubled
    (it multiplied [-1, 1] coordinates), hash grid without the offset."""
    config = json.loads(json.dumps(config))
    options = config["encoding_options"]
    if config["encoding"] == "nerf":
        options["pi"] = True
    elif config["encoding"] == "fourier":
        options["scale"] = 2.0 * options.get("scale", 10.0)
    elif config["encoding"] == "hashgrid":
        options["half_cell_offset"] = False
    return config


@pytest.mark.parametrize("entry", LEGACY, ids=[e["config"]["model"] for e in LEGACY])
def test_configs_saved_before_architectures_build_the_same_network(entry):
    # config.json / checkpoint model dicts of the flat format (no "architecture"), with the parameter tree,
    # init checksums (key 7) and outputs recorded by the code that wrote them
    legacy, meant = entry["config"], _old_conventions(entry["config"])
    assert "architecture" not in legacy and "conventions" not in legacy
    config = ModelConfig.from_dict(legacy)  # read with the options that rebuild its network
    assert config.architecture == "mlp" and config.model == legacy["model"]
    assert {k: getattr(config, k) for k in meant} == meant
    # saved with today's conventions, plus the architecture
    assert config.to_dict() == {**meant, "architecture": "mlp", "conventions": CONVENTIONS}
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="update flax-inr"):
        ModelConfig.from_dict({**config.to_dict(), "conventions": CONVENTIONS + 1})
    fit = FitConfig.from_dict({"model": legacy, "steps": 3})  # a whole legacy config.json
    assert fit.model == config
    model = build_model(config)
    variables = model.init(jax.random.key(7), jnp.zeros((1, 2), jnp.float32))
    leaves = {jax.tree_util.keystr(p): x for p, x in jax.tree_util.tree_leaves_with_path(variables)}
    assert sorted(leaves) == sorted(entry["leaves"])
    for path, (shape, total, abs_total) in entry["leaves"].items():
        x = np.asarray(leaves[path], np.float64)
        assert list(x.shape) == shape, path
        np.testing.assert_allclose([x.sum(), np.abs(x).sum()], [total, abs_total], rtol=1e-6, atol=1e-9,
                                   err_msg=path)
    coords = jnp.asarray([[0.1, -0.3], [0.7, 0.2]], jnp.float32)
    np.testing.assert_allclose(np.asarray(model.apply(variables, coords)), entry["values"], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------ option types


@pytest.mark.parametrize("preset, setting, value, words", [
    ("siren", "omega0", "abc", ["omega0", "layer 'sine'", "a number", "'abc'"]),
    ("ffn", "scale", "abc", ["scale", "encoding 'fourier'", "a number", "'abc'"]),
    ("ffn", "fourier_scale", [1.0], ["scale", "encoding 'fourier'", "a number", "[1.0]"]),
    ("siren", "learnable", "maybe", ["learnable", "layer 'sine'", "bool", "'maybe'"]),
    ("siren", "fast_sine", 1, ["fast", "layer 'sine'", "bool", "1"]),
    ("gauss", "sigma", None, None),  # None overrides are ignored
    ("hashgrid", "num_levels", 2.5, ["num_levels", "encoding 'hashgrid'", "integer", "2.5"]),
    ("relu_pe", "activation", 3, ["activation", "layer 'dense'", "string", "3"]),
    ("relu_pe", "width", "wide", ["width", "integer", "'wide'"]),
    ("relu_pe", "output_offset", "half", ["output_offset", "number", "'half'"]),
    ("relu_pe", "in_dim", 2.0, ["in_dim", "integer", "2.0"]),
])
def test_option_values_checked_against_field_types(preset, setting, value, words):
    if words is None:
        assert model_config(preset, **{setting: value}) == model_config(preset)
        return
    with pytest.raises(ValueError) as err:
        model_config(preset, **{setting: value})
    message = str(err.value)
    assert all(w in message for w in words), message
    assert "\n" not in message


def test_option_types_in_nested_options_and_saved_configs():
    with pytest.raises(ValueError, match=r"option omega0 of layer 'sine' must be a number \(float\), got 'abc'"):
        model_config("siren", layer_options={"omega0": "abc"})
    with pytest.raises(ValueError, match="option learnable of layer 'sine' must be true or false"):
        model_config("siren", first_layer_options={"learnable": "yes"})
    with pytest.raises(ValueError, match="scales of encoding 'multiscale_fourier' must be a list of numbers"):
        model_config("relu_pe", encoding="multiscale_fourier", scales=[1.0, "x"])
    with pytest.raises(InputError, match="omega0") as err:
        FitConfig.from_dict({"model": {"model": "siren", "omega0": "abc"}})
    assert "\n" not in str(err.value)
    # the right types pass: ints for floats, bools for bools, lists for tuples
    config = model_config("siren", omega0=20, learnable=True)
    assert config.layer_options == {"omega0": 20, "learnable": True}
    multiscale = model_config("relu_pe", encoding="multiscale_fourier", scales=[1, 2.5])
    assert multiscale.encoding_options["scales"] == [1, 2.5]
