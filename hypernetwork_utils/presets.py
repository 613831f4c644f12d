"""Named training presets of hypernetworks (:class:`hypernetwork_utils.training.HyperTrainingSettings`).

* ``cpu`` (the default): sized for about an hour on a 2-core CPU with the shared CIFAR-10 batch
  (``../shared/data/cifar10``, 10,000 images: 9,500 to train, 500 held out): the paper's recipe (batch 16,
  Adam 5e-4, warm-up then cosine decay, jitter 0.01) over fewer epochs, the warm-up shortened in proportion
  (1/8 of the run, as 5 of 40 epochs).
* ``gpu_paper``: the published CIFAR-10 settings of LA-INR (Lee et al., "Locality-Aware Generalizable Implicit
  Neural Representation", NeurIPS 2023; the Trans-INR recipe of Chen & Wang, ECCV 2022): 40 epochs over the
  full training split (pass all five ``data_batch_N`` files), batch 16, Adam with learning rate 5e-4, linear
  warm-up over 5 epochs then cosine decay. Not run here (a GPU's work).
"""

from __future__ import annotations

from hypernetwork_utils.training import HyperTrainingSettings
from model_components.registry import Registry

__all__ = ["TRAINING_PRESETS", "training_preset"]

#: Preset name -> settings.
TRAINING_PRESETS: Registry[HyperTrainingSettings] = Registry("training preset", {
    "cpu": HyperTrainingSettings(epochs=6.0, warmup_epochs=0.75, steps_per_call=25, checkpoint_every=500,
                                 eval_every=500, val_count=500),
    "gpu_paper": HyperTrainingSettings(epochs=40.0, warmup_epochs=5.0, steps_per_call=100, checkpoint_every=5000,
                                       eval_every=5000, val_count=500),
})


def training_preset(name: str) -> HyperTrainingSettings:
    """The settings of preset ``name``; an unknown name raises ``ValueError`` listing the presets."""
    return TRAINING_PRESETS.get(name)
