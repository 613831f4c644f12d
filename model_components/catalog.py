"""What ``model_components`` registers: every layer, encoding and activation, listed once.

Each registry is built from the explicit list below, so it is complete whatever was imported before (no
registration as a side effect of importing a module). Adding a component: write its class in its module, then
add one line here. Models (architectures) are listed in :data:`model_components.inrs.MODELS` and presets in
:data:`model_components.presets.MODEL_PRESETS`.

Names shown to users (``--layer`` choices, error messages) come from these registries (``LAYERS.names()``).
"""

from __future__ import annotations

import flax.linen as nn

from model_components import encodings, hash_grid, incode, layer_zoo, layers, wave_layers
from model_components.layers import ACTIVATIONS
from model_components.registry import Registry

#: Hidden layer types of an MLP INR: ``cls(features, is_first=..., dtype=..., **options)``,
#: ``(..., fan_in) -> (..., features)``.
LAYERS: Registry[type[nn.Module]] = Registry("layer", {
    "dense": layers.DenseLayer,
    "sine": layers.SineLayer,
    "gauss": layer_zoo.GaussLayer,
    "quadratic": layer_zoo.QuadraticLayer,
    "multiquadratic": layer_zoo.MultiQuadraticLayer,
    "laplacian": layer_zoo.LaplacianLayer,
    "supergaussian": layer_zoo.SuperGaussianLayer,
    "expsin": layer_zoo.ExpSinLayer,
    "wire": wave_layers.WireLayer,
    "wire_real": wave_layers.RealWireLayer,
    "finer": wave_layers.FinerLayer,
    "hosc": wave_layers.HoscLayer,
    "adahosc": wave_layers.AdaHoscLayer,
    "sinc": wave_layers.SincLayer,
    "incode": incode.IncodeLayer,
})

#: Coordinate encodings: ``cls(**options)``, ``(..., d) -> (..., output_dim(d))``.
ENCODINGS: Registry[type[nn.Module]] = Registry("encoding", {
    "none": encodings.IdentityEncoding,
    "nerf": encodings.PositionalEncoding,
    "fourier": encodings.GaussianFourierFeatures,
    "multiscale_fourier": encodings.MultiScaleFourierFeatures,
    "lattice_fourier": encodings.LatticeFourierFeatures,
    "hashgrid": hash_grid.HashGridEncoding,
})

__all__ = ["ACTIVATIONS", "ENCODINGS", "LAYERS"]
