"""FitConfig files: JSON and YAML round trips, partial hand-written configs, presets' training settings."""

from __future__ import annotations

import pytest

from inr_utils.config import TRAINING_PRESETS, FitConfig, resolve_config, with_preset_training
from inr_utils.errors import InputError
from model_components.inrs import ModelConfig, model_config


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_save_load_round_trip(tmp_path, suffix):
    config = FitConfig(model=model_config("siren", width=64, omega0=20.0), steps=321, lr=3e-4, batch_size=None)
    config.save(tmp_path / f"c{suffix}")
    assert FitConfig.load(tmp_path / f"c{suffix}") == config


def test_partial_yaml_fills_preset_then_defaults(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  model: siren\n  width: 64\n  omega0: 20\nsteps: 50\n")
    config = FitConfig.load(path)
    assert config.model == model_config("siren", width=64, omega0=20)
    assert config.model.layer == "sine" and config.model.encoding == "none"  # from the preset, not ModelConfig
    assert config.steps == 50
    assert config.lr == TRAINING_PRESETS["siren"]["lr"] != FitConfig().lr  # the preset's recommended lr
    assert config.batch_size == FitConfig().batch_size


def test_model_may_be_a_preset_name():
    assert FitConfig.from_dict({"model": "relu_pe"}).model == model_config("relu_pe")
    assert FitConfig.from_dict({}).model == FitConfig().model


def test_explicit_training_fields_beat_the_preset():
    assert FitConfig.from_dict({"model": "siren", "lr": 5e-3}).lr == 5e-3


@pytest.mark.parametrize("text, words", [("model: [1, 2\n", "not valid YAML"), ("- 1\n- 2\n", "mapping"),
                                         ("stpes: 3\n", "stpes"), ("model: {model: nosuch}\n", "nosuch"),
                                         ("model: {model: siren, omgea0: 3}\n", "omgea0")])
def test_bad_yaml_is_one_clear_error(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        FitConfig.load(path)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_model_config_from_partial_dict_equals_model_config():
    assert ModelConfig.from_dict({"model": "ffn", "fourier_scale": 3.0}) == model_config("ffn", fourier_scale=3.0)
    full = model_config("ffn", encoding="nerf", num_frequencies=4).to_dict()
    assert ModelConfig.from_dict(full).to_dict() == full  # a saved config with a switched encoding survives


@pytest.mark.parametrize(("text", "words"), [
    ('steps: "many"\n', "steps must be a whole number, got 'many'"),
    ("steps: 1.5\n", "steps must be a whole number"),
    ("lr: 1e-4\n", "lr must be a number, got '1e-4' (str); write numbers without quotes"),  # YAML 1.1 reads text
    ("batch_size: lots\n", "batch_size must be a whole number or null"),
    ("jitter: 1\n", "jitter must be true or false"),
    ("seed: true\n", "seed must be a whole number"),
    ("image: 3\n", "image must be text or null"),
    ("lr_schedule: 2\n", "lr_schedule must be text"),
])
def test_every_field_type_is_checked(tmp_path, text, words):
    path = tmp_path / "typed.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        FitConfig.load(path)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_numbers_of_either_kind_fill_float_fields():
    assert FitConfig.from_dict({"lr": 1, "final_lr_fraction": 1}).lr == 1
    assert FitConfig.from_dict({"batch_size": None}).batch_size is None


def test_one_preset_merge():
    """The preset's training settings sit under explicit ones, the same for a file and for flags."""
    assert with_preset_training("siren", {"steps": 3}) == {**TRAINING_PRESETS["siren"], "steps": 3}
    assert with_preset_training("siren", {"lr": 5e-3})["lr"] == 5e-3
    assert resolve_config(model="siren") == FitConfig.from_dict({"model": "siren"})
    assert resolve_config(model="siren", training={"lr": 5e-3}) == FitConfig.from_dict({"model": "siren", "lr": 5e-3})
    base = FitConfig.from_dict({"model": "siren", "lr": 7e-4})
    assert resolve_config(base, "siren").lr == 7e-4  # the same preset keeps the base's settings
    assert resolve_config(base, "relu_pe").lr == 7e-4  # another preset brings its own (relu_pe: none)
    assert resolve_config(base, "relu_pe").model == model_config("relu_pe")
    assert resolve_config(base, model_settings={"width": 16}).model == model_config("siren", width=16)
    with pytest.raises(InputError, match="nosuch"):
        resolve_config(model="nosuch")
