"""Pure Flax Linen building blocks of implicit neural representations (no training code, no I/O).

Modules:
  registry      -- ``Registry``: name -> component lookups with helpful errors.
  fast_math     -- ``fast_sin`` / ``fast_cos``: polynomial sine/cosine with exact custom derivatives.
  initializers  -- paper initialisations (SIREN, PyTorch default) as standalone functions.
  encodings     -- coordinate encodings (NeRF positional encoding, Gaussian Fourier features).
  layers        -- ``Linear`` (mixed precision) and hidden layers (dense+activation, SIREN sine).
  inrs          -- ``MLPINR``, ``ModelConfig``, presets and ``build_model``.

Words: *coords* are points of the signal's domain, shape ``(..., in_dim)``, in [-1, 1]; a *field* or
*INR* maps coords to signal values ``(..., out_dim)``; *params* are plain pytrees, so a hypernetwork can
emit them and ``vmap`` can batch them.
"""

from model_components.encodings import ENCODINGS, GaussianFourierFeatures, PositionalEncoding
from model_components.fast_math import fast_cos, fast_sin
from model_components.inrs import MLPINR, MODEL_PRESETS, ModelConfig, build_model, count_params, model_config
from model_components.layers import LAYERS, DenseLayer, Linear, SineLayer

__all__ = [
    "ENCODINGS", "GaussianFourierFeatures", "PositionalEncoding", "fast_cos", "fast_sin", "MODEL_PRESETS",
    "MLPINR", "ModelConfig", "build_model", "count_params", "model_config", "LAYERS", "DenseLayer", "Linear",
    "SineLayer",
]
