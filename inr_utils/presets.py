"""Training presets: the settings (learning rate, schedule, steps, batch size) each model preset is known to
train well with, as :class:`inr_utils.config.FitConfig` fields.

``FitConfig.from_dict`` and the scripts apply a preset's entry when that model preset is chosen and the field
is not set explicitly. The architectures themselves are :data:`model_components.presets.MODEL_PRESETS`; a preset
without an entry here trains with the ``FitConfig`` defaults.
"""

from __future__ import annotations

from typing import Any

# The zoo layers' learning rates were checked on scikit-image's astronaut at 64x64: Adam with the default cosine
# decay, the full image every step, 300 steps, seed 0, the preset's architecture
# (``model_components.layer_zoo``); the PSNRs are of that training image (with 200k parameters for 4096 pixels
# this measures how fast a layer type memorises, not how well it interpolates). SIREN's preset with lr 1e-4
# reached 39.7 dB in the same check.
_ZOO_LR: dict[str, float] = {
    "gauss": 3e-3,  # 47.9 dB (sigma 0.03: 46.2, 0.1: 40.5)
    "quadratic": 3e-3,  # 45.0 dB (a 10: 36.0, 100: 21.8)
    "multiquadratic": 3e-3,  # 39.1 dB (a 30: 35.8, 100: 37.1)
    "laplacian": 3e-3,  # 44.0 dB (a 0.1: 39.4, 0.01: 11.0)
    "supergaussian": 3e-3,  # 47.6 dB (a 0.1: 45.9)
    "expsin": 1e-3,  # 36.5 dB (a 3: 27.6, a 10: fails to train)
    "wire": 1e-3,  # see layer_zoo's _WIRE_NOTE
    "wire_real": 1e-3,  # 123.9 dB (lr 3e-3: 50.7)
    "finer": 5e-4,  # 133.2 dB (k 20: 80.1)
    "hosc": 2e-4,  # 86.4 dB (lr 1e-4: 58.6, 5e-4: 52.3)
    "adahosc": 2e-4,  # 72.7 dB
    "sinc": 1e-3,  # 81.1 dB (omega 10: 36.0, 60: 38.3)
}

#: Model preset name -> FitConfig fields it recommends (e.g. ``{"lr": 1e-4}``); read by ``inr_utils.config``.
TRAINING_PRESETS: dict[str, dict[str, Any]] = {
    "relu_pe": {},
    "ffn": {},
    # SIREN (Sitzmann et al. 2020): Adam 1e-4 (supplement; 1e-3 makes its sines jump periods).
    "siren": {"lr": 1e-4},
    **{name: {"lr": lr} for name, lr in _ZOO_LR.items()},
    # Instant-NGP: the full image every step, Adam at lr 0.03 (Adam's step size is ~lr per table entry, and
    # entries start at 1e-4). PSNR after 100 / 500 cosine-decayed steps on 256x256 images, lr 0.1 vs 0.03 vs
    # 0.01:
    #   astronaut, full image:        39.3 / 49.5  vs  39.6 / 48.5
    #   camera, full image:           30.3 / 45.7  vs  41.8 / 51.3
    #   astronaut, batches of 4096:   33.8 / 42.6  vs  34.1 / 43.9  vs  31.5 / 42.1
    #   camera, batches of 4096:      25.5 / 29.1  vs  35.4 / 46.0  vs  34.4 / 42.8
    # so 0.03 is the default. lr 0.1 reaches 30 dB on the astronaut in fewer steps (25, against 65 at 0.01 and
    # 38 at 0.05), which is why benchmarks/time_to_psnr.py sets it.
    # Local-Global INRs: SIREN's and FINER's rates (their layers are the same sines).
    "lg_siren": {"lr": 1e-4}, "lg_siren_add": {"lr": 1e-4}, "lc_siren": {"lr": 1e-4},
    "lg_finer": {"lr": 5e-4}, "lc_finer": {"lr": 5e-4},
    # INCODE and LG-INCODE: SIREN's rate (see docs/signals.md for the reference's 9e-4 tried here).
    "incode": {"lr": 1e-4}, "lg_incode": {"lr": 1e-4},
    "hashgrid": {"lr": 3e-2, "lr_schedule": "cosine", "batch_size": None, "steps": 500},
}
