"""Model presets: named starting points for :func:`model_components.inrs.model_config`.

A preset is a dict of :class:`~model_components.inrs.ModelConfig` fields (``architecture``, ``in_dim``,
``out_dim``, ``dtype``) and options of its architecture (for the MLP: ``encoding``, ``layer``,
``layer_options``, ``width``, ...); everything left out keeps the defaults. Presets are architectures only:
the training settings they work well with are ``inr_utils.presets.TRAINING_PRESETS``.

What is registered is the explicit list below; a layer or encoding module keeps its preset's fields next to
its code (``layer_zoo.PRESETS``, ``hash_grid.PRESET``) and this module lists them.
"""

from __future__ import annotations

from typing import Any

from model_components import hash_grid, incode, layer_zoo, local_global
from model_components.registry import Registry

#: Preset name -> the ModelConfig fields / architecture options it sets (others keep their defaults).
MODEL_PRESETS: Registry[dict[str, Any]] = Registry("model", {
    # Positional encoding + ReLU MLP, the classic tutorial INR (Mildenhall et al. 2020; Tancik et al. 2020).
    "relu_pe": dict(encoding="nerf", encoding_options={"num_frequencies": 10}, layer="dense",
                    layer_options={"activation": "relu"}, width=256, depth=4, output_activation="sigmoid"),
    # Gaussian Fourier feature network (Tancik et al. 2020): random Fourier features + ReLU MLP. sigma is in the
    # paper's unit (cycles per image side, encodings.GaussianFourierFeatures); 20 is what the preset always used
    # (it was written 10 per unit of [-1, 1] before the convention changed; README "Conventions", item 2).
    "ffn": dict(encoding="fourier", encoding_options={"num_features": 256, "scale": 20.0}, layer="dense",
                layer_options={"activation": "relu"}, width=256, depth=3, output_activation="sigmoid"),
    # SIREN (Sitzmann et al. 2020): raw coordinates, sine layers, linear output centred on mid-grey. float32:
    # omega0 = 30 scales the rounding error of bfloat16 products to ~0.1 rad of phase.
    "siren": dict(encoding="none", layer="sine", layer_options={"omega0": 30.0}, first_layer_options={"omega0": 30.0},
                  width=256, depth=3, output_activation="identity", output_offset=0.5, dtype="float32"),
    **layer_zoo.PRESETS,
    "hashgrid": hash_grid.PRESET,
    # Local-Global INRs (Ashkenazi & Treister, NeurIPS 2024; model_components.local_global): set `partitions`
    # for the signal (or let inr_utils.partitions.auto_partition choose it and the widths from a budget); the
    # widths here are the reference code's image defaults for 32x32-sample partitions of a ~200k budget.
    **local_global.PRESETS,
    # INCODE (Kazerouni et al., WACV 2024; model_components.incode) and LG-INCODE, its Local-Global version.
    **incode.PRESETS,
})
