"""Model presets: named starting points for :func:`model_components.inrs.model_config`.

A preset is a dict of ``ModelConfig`` fields plus the training settings it is known to work with. Layer
modules register their own preset next to the layer (``register_preset("gauss", ...)``), so adding a layer
type with a good default is a one-file change. This module imports nothing else of the package, so any
module may register from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Preset name -> the ModelConfig fields it sets (others keep the ModelConfig defaults).
MODEL_PRESETS: dict[str, dict[str, Any]] = {}
#: Preset name -> FitConfig fields it recommends (e.g. ``{"lr": 1e-4}``); read by ``inr_utils.config``.
PRESET_TRAINING: dict[str, dict[str, Any]] = {}


def register_preset(name: str, training: Mapping[str, Any] | None = None, **fields: Any) -> None:
    """Registers the model preset ``name``.

    Args:
      name: the preset's name (what ``--model`` takes).
      training: FitConfig fields the preset trains well with (e.g. ``{"lr": 1e-4, "lr_schedule": "cosine"}``).
      **fields: ModelConfig fields (``layer="gauss"``, ``layer_options={...}``, ``width=256``, ...).

    Raises:
      KeyError: ``name`` is already registered.
    """
    if name in MODEL_PRESETS:
        raise KeyError(f"model preset {name!r} is already registered")
    MODEL_PRESETS[name] = dict(fields)
    PRESET_TRAINING[name] = dict(training or {})
