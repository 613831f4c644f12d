"""``FitConfig``: everything that defines a single-signal fit, saved as JSON next to the results so that
``experiments/fit_image.py --config that.json`` re-runs it exactly."""

from __future__ import annotations

import dataclasses
import json
import numbers
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from inr_utils.errors import InputError
from inr_utils.optim import LR_SCHEDULES
from inr_utils.presets import TRAINING_PRESETS
from model_components.inrs import ModelConfig, model_config

YAML_SUFFIXES = (".yaml", ".yml")


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """A full, reproducible description of one image fit.

    The defaults are the front door's: Gaussian Fourier features + ReLU MLP (``ffn``), Adam 1e-3 with cosine
    decay, 4096 random pixels a step, 1500 steps; on the bundled 256x256 astronaut this reaches ~38 dB.

    Attributes:
      model: the INR architecture.
      image: path of the image to fit; ``None`` means the bundled default (scikit-image's ``astronaut``).
      max_size: longest image side in pixels after loading (larger images are downscaled, aspect kept).
      steps: optimisation steps.
      batch_size: random pixels per step; ``None`` uses the full image every step.
      lr: peak learning rate of Adam.
      lr_schedule: ``constant``, ``cosine`` (to ``final_lr_fraction * lr``) or ``exponential`` (same end).
      final_lr_fraction: learning rate at the last step, as a fraction of ``lr`` (decaying schedules).
      warmup_steps: linear warm-up from 0 to ``lr`` over this many steps.
      loss: loss name in :data:`inr_utils.losses.LOSSES`.
      jitter: move sampled coordinates uniformly within their pixel.
      sampler: how the ``batch_size`` samples of a step are drawn, a name in
        :data:`inr_utils.samplers.SAMPLERS` taking a batch size: ``random`` (uniform, with replacement) or
        ``window`` (a contiguous window at a random start, e.g. a stretch of audio); unused when ``batch_size``
        is ``None``.
      seed: seeds initialisation and sampling; the same seed gives the same result.
      steps_per_call: steps run per compiled call (``lax.scan``); progress, full-image PSNR and NaN checks
        happen between calls.
      checkpoint_every: steps between periodic checkpoints (0: only at the end / on interruption).
    """

    model: ModelConfig = dataclasses.field(default_factory=lambda: model_config("ffn"))
    image: str | None = None
    max_size: int = 256
    steps: int = 1500
    batch_size: int | None = 4096
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    final_lr_fraction: float = 0.05
    warmup_steps: int = 0
    loss: str = "mse"
    jitter: bool = False
    sampler: str = "random"
    seed: int = 0
    steps_per_call: int = 100
    checkpoint_every: int = 500

    def validate(self) -> FitConfig:
        """Raises :class:`InputError` naming the bad field and a valid value (or the expected type); returns
        self."""
        check_field_types(self)
        try:
            self.model.validate()
        except ValueError as err:
            raise InputError(str(err)) from None
        positive = {"steps": self.steps, "lr": self.lr, "max_size": self.max_size,
                    "steps_per_call": self.steps_per_call}
        if self.batch_size is not None:
            positive["batch_size"] = self.batch_size
        for name, value in positive.items():
            if not value > 0:
                raise InputError(f"{name} must be positive, got {value}; e.g. --{name.replace('_', '-')} "
                                 f"{getattr(FitConfig, name, None) or 1}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(f"unknown lr schedule {self.lr_schedule!r}; "
                             f"choose one of: {', '.join(LR_SCHEDULES.names())}")
        if not 0 < self.final_lr_fraction <= 1:
            raise InputError(f"final_lr_fraction must be in (0, 1], got {self.final_lr_fraction}")
        if self.warmup_steps < 0 or self.checkpoint_every < 0:
            raise InputError("warmup_steps and checkpoint_every must be >= 0")
        from inr_utils.losses import LOSSES
        from inr_utils.samplers import batch_samplers

        if self.sampler not in batch_samplers():
            raise InputError(f"unknown sampler {self.sampler!r}; choose one of: {', '.join(batch_samplers())} "
                             "(the whole signal every step is --batch-size full)")

        if self.loss not in LOSSES:
            raise InputError(f"unknown loss {self.loss!r}; choose one of: {', '.join(LOSSES.names())}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FitConfig:
        """Inverse of :meth:`to_dict`, also for partial dicts (e.g. a hand-written YAML file): ``model`` may be
        a preset name or a (partial) model dict, and training fields left out take the preset's recommended
        values (:data:`TRAINING_PRESETS`), then the defaults. Unknown keys raise :class:`InputError` listing
        the valid ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown config field(s) {unknown}; valid fields: {', '.join(sorted(known))}")
        values = dict(values)
        try:
            model = values.get("model")
            if model is None:
                values["model"] = cls().model
            elif isinstance(model, str):
                values["model"] = model_config(model)
            else:
                values["model"] = ModelConfig.from_dict(model)
            values = with_preset_training(values["model"].model, values)
            return cls(**values).validate()
        except InputError:
            raise
        except (TypeError, ValueError) as err:
            raise InputError(f"invalid config: {err}") from None

    def save(self, path: str | Path) -> None:
        """Writes the config as indented JSON, or YAML when ``path`` ends in ``.yaml``/``.yml``."""
        path = Path(path)
        if path.suffix in YAML_SUFFIXES:
            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        else:
            path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> FitConfig:
        """Reads a config written by :meth:`save` (JSON, or YAML for ``.yaml``/``.yml`` files; fields left out
        keep their defaults); raises :class:`InputError` if missing or invalid."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"config file '{path}' does not exist; pass the config.json of an earlier run")
        kind = "YAML" if path.suffix in YAML_SUFFIXES else "JSON"
        try:
            text = path.read_text()
            values = yaml.safe_load(text) if kind == "YAML" else json.loads(text)
        except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as err:
            message = str(err).replace("\n", " ")
            raise InputError(f"config file '{path}' is not valid {kind} ({message}); fix or regenerate it") from None
        if not isinstance(values, dict):
            raise InputError(f"config file '{path}' must hold a {kind} mapping of config fields")
        return cls.from_dict(values)


def _type_name(kind: Any) -> str:
    names = {int: "a whole number", float: "a number", bool: "true or false", str: "text",
             type(None): "null", ModelConfig: "a model config (a preset name or a mapping of model fields)"}
    return names.get(kind, getattr(kind, "__name__", str(kind)))


def _fits(value: Any, kind: Any) -> bool:
    if kind is type(None):
        return value is None
    if kind is bool:
        return type(value).__name__ in ("bool", "bool_")  # Python's or numpy's bool, not 0/1
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    return isinstance(value, kind)


def check_field_types(config: Any) -> None:
    """Raises :class:`InputError` for the first field of the dataclass ``config`` whose value does not have
    the annotated type (``int`` fields take whole numbers, ``float`` fields any real number, ``X | None`` also
    ``None``), naming the field and the expected type."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        hint = hints[field.name]
        kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
            else (hint,)
        value = getattr(config, field.name)
        if any(_fits(value, kind) for kind in kinds):
            continue
        expected = " or ".join(_type_name(kind) for kind in kinds)
        hint_text = ""
        if isinstance(value, str):
            try:
                float(value)
                hint_text = "; write numbers without quotes (YAML reads 1e-4 as text: write 1.0e-4)"
            except ValueError:
                pass
        raise InputError(f"config field {field.name} must be {expected}, got {value!r} "
                         f"({type(value).__name__}){hint_text}")


def with_preset_training(preset: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` over the training settings recommended by model preset ``preset`` (:data:`TRAINING_PRESETS`,
    e.g. SIREN's lr 1e-4): the one place a preset's training defaults are merged."""
    return {**TRAINING_PRESETS.get(preset, {}), **fields}


def resolve_config(base: FitConfig | None = None, model: str | None = None, *,
                   training: Mapping[str, Any] | None = None, model_settings: Mapping[str, Any] | None = None,
                   layer_options: Mapping[str, Any] | None = None,
                   encoding_options: Mapping[str, Any] | None = None) -> FitConfig:
    """A validated config from a base, a model preset and explicit settings; what every script's flags go
    through (:func:`inr_utils.cli.config_from_flags`).

    Precedence: FitConfig defaults < the preset ``model`` (its architecture, and its recommended training
    settings when it differs from ``base``'s model or there is no ``base``) < ``base`` < explicit settings.

    Args:
      base: config to start from (default: ``FitConfig()``).
      model: preset name in ``MODEL_PRESETS``; ``None`` keeps ``base``'s model.
      training: FitConfig fields (``steps``, ``lr``, ...).
      model_settings: flat :func:`model_config` overrides (``width``, ``omega0``, ``num_frequencies``, ...).
      layer_options, encoding_options: options merged into the model's layer / encoding options.

    Raises:
      InputError: a bad field or value, naming it.
    """
    training, model_settings = dict(training or {}), dict(model_settings or {})
    try:
        if model is not None and (base is None or model != base.model.model):
            model_cfg = model_config(model, **model_settings)
            training = with_preset_training(model, training)
        else:
            model_cfg = model_config(base=(base or FitConfig()).model, **model_settings)
        if layer_options or encoding_options:
            model_cfg = model_config(base=model_cfg, layer_options={**model_cfg.layer_options, **(layer_options or {})},
                                     encoding_options={**model_cfg.encoding_options, **(encoding_options or {})})
    except (TypeError, ValueError) as err:
        raise InputError(str(err)) from None
    base_values = (base or FitConfig()).to_dict()
    return FitConfig.from_dict({**base_values, **training, "model": model_cfg.to_dict()})
