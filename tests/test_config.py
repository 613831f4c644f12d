"""FitConfig files: JSON and YAML round trips, partial hand-written configs, presets' training settings."""

from __future__ import annotations

import pytest

from inr_utils.config import TRAINING_PRESETS, FitConfig
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
