"""Orbax checkpoints of a :class:`~inr_utils.training.TrainState` plus the run's JSON config.

Layout: ``directory/<step>/{state,config}``; the newest ``max_to_keep`` steps are kept. Saves are
synchronous and atomic (Orbax writes to a temporary folder and renames), so an interrupted save never
replaces a good checkpoint with half of one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from inr_utils.errors import InputError
from inr_utils.training import TrainState


def _manager(directory: str | Path, max_to_keep: int = 2, create: bool = True) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create,
                                           enable_async_checkpointing=False)
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def save_checkpoint(directory: str | Path, state: TrainState, config: dict[str, Any], max_to_keep: int = 2) -> int:
    """Saves ``state`` and ``config`` under ``directory/<state.step>``; returns that step."""
    step = int(state.step)
    with _manager(directory, max_to_keep) as manager:
        manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                   config=ocp.args.JsonSave(config)), force=True)
        manager.wait_until_finished()
    return step


def latest_step(directory: str | Path) -> int | None:
    """Newest saved step in ``directory``, or ``None`` if there is no checkpoint."""
    if not Path(directory).is_dir():
        return None
    with _manager(directory, create=False) as manager:
        return manager.latest_step()


def load_config(directory: str | Path, step: int | None = None) -> dict[str, Any]:
    """The JSON config stored with the checkpoint at ``step`` (default newest)."""
    step = _existing_step(directory, step)
    with _manager(directory, create=False) as manager:
        return manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]


def restore_checkpoint(directory: str | Path, template: TrainState, step: int | None = None) -> TrainState:
    """Restores the state saved at ``step`` (default newest) into the structure of ``template`` (a state
    built from the same config; its values are ignored)."""
    step = _existing_step(directory, step)
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
    with _manager(directory, create=False) as manager:
        restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
    return restored["state"]


def _existing_step(directory: str | Path, step: int | None) -> int:
    found = latest_step(directory)
    if found is None:
        raise InputError(f"no checkpoint found in '{directory}'; pass a run folder written by fit_image.py "
                         "(or its checkpoints/ folder)")
    return found if step is None else step
