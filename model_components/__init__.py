"""Pure Flax Linen building blocks of implicit neural representations (no training code, no I/O).

Modules:
  registry      -- ``Registry``: name -> component lookups with helpful errors.
  catalog       -- the explicit lists of what is registered: ``LAYERS``, ``ENCODINGS``, ``ACTIVATIONS``.
  options       -- user options of components: names, defaults and type checks.
  fast_math     -- ``fast_sin`` / ``fast_cos``: polynomial sine/cosine with exact custom derivatives.
  initializers  -- paper initialisations (SIREN, PyTorch default) as standalone functions.
  encodings     -- coordinate encodings (NeRF positional encoding, Fourier features, ...); hash_grid: Instant-NGP.
  layers        -- ``Linear`` (mixed precision) and hidden layers (dense+activation, SIREN sine).
  layer_zoo     -- the zoo layers' base class, the bump-shaped family (Gaussian, ...) and the zoo's presets.
  wave_layers   -- oscillating zoo layers: WIRE, FINER, HOSC/AdaHOSC, sinc.
  incode        -- INCODE layers (sines conditioned by a harmonizer on the signal) and their presets.
  mlp           -- the ``mlp`` architecture: ``MLPINR`` and its options ``MLPOptions``.
  local_global  -- the ``local_global`` architecture: ``LocalGlobalINR`` (croppable Local-Global INRs) and options.
  inrs          -- the INR contract, ``MODELS`` (architectures), ``ModelConfig``, ``model_config``, ``build_model``.
  presets       -- ``MODEL_PRESETS``: named architectures (training settings live in ``inr_utils.presets``).
  templates     -- ``ParamTemplate``: shapes of an INR's variables, flatten/unflatten (what hypernetworks emit).
  weight_hypernet -- the ``weights`` hypernetwork: image encoder -> full or low-rank-modulated INR params.
  trans_inr     -- the ``transinr`` hypernetwork (Trans-INR): weight tokens rescale a base MLP's columns.

Words: *coords* are points of the signal's domain, shape ``(..., in_dim)``, in [-1, 1]; a *field* or
*INR* maps coords to signal values ``(..., out_dim)``; *params* are plain pytrees, so a hypernetwork can
emit them and ``vmap`` can batch them.
"""

from model_components.catalog import ACTIVATIONS, ENCODINGS, LAYERS
from model_components.encodings import GaussianFourierFeatures, PositionalEncoding
from model_components.fast_math import fast_cos, fast_sin
from model_components.inrs import INR, MODELS, ModelConfig, build_model, count_params, model_config
from model_components.layers import DenseLayer, Linear, SineLayer
from model_components.mlp import MLPINR, MLPOptions
from model_components.presets import MODEL_PRESETS
from model_components.trans_inr import TransINR, TransINROptions
from model_components.weight_hypernet import WeightHypernetOptions, WeightHypernetwork

__all__ = [
    "ACTIVATIONS", "ENCODINGS", "LAYERS", "GaussianFourierFeatures", "PositionalEncoding", "fast_cos", "fast_sin",
    "INR", "MODELS", "ModelConfig", "build_model", "count_params", "model_config", "DenseLayer", "Linear",
    "SineLayer", "MLPINR", "MLPOptions", "MODEL_PRESETS",
    "WeightHypernetOptions", "WeightHypernetwork", "TransINR", "TransINROptions",
]
