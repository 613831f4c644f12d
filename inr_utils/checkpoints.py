"""Orbax checkpoints of a :class:`~inr_utils.training.TrainState` plus the run's JSON config.

Layout: ``directory/<step>/{state,config}``; the newest ``max_to_keep`` steps (at least two) are kept. Saves
are synchronous and atomic (Orbax writes to a temporary folder and renames), so an interrupted save never
replaces a good checkpoint with half of one. A checkpoint damaged afterwards (files truncated or corrupted on
disk) is skipped with a :class:`DamagedCheckpointWarning` in favour of the newest intact older one; when none
is intact, restoring raises an :class:`InputError` naming the folder.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from inr_utils.errors import InputError
from inr_utils.training import TrainState


class DamagedCheckpointWarning(UserWarning):
    """A checkpoint could not be read; an older one was used instead."""


def _manager(directory: str | Path, max_to_keep: int = 2, create: bool = True) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create,
                                           enable_async_checkpointing=False)
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def save_checkpoint(directory: str | Path, state: TrainState, config: dict[str, Any], max_to_keep: int = 2) -> int:
    """Saves ``state`` and ``config`` under ``directory/<state.step>`` (replacing a checkpoint of that step,
    which only exists when a resumed run fell back past it because it was damaged); returns that step.
    ``max_to_keep`` (at least 2, so that a damaged newest checkpoint leaves an older one) newest steps are kept."""
    max_to_keep = max(2, max_to_keep)
    step = int(state.step)
    with _manager(directory, max_to_keep) as manager:
        if step in manager.all_steps():  # a damaged checkpoint that a resumed run fell back past
            manager.delete(step)
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


def all_steps(directory: str | Path) -> list[int]:
    """Every saved step in ``directory``, newest first (empty if there is no checkpoint)."""
    if not Path(directory).is_dir():
        return []
    with _manager(directory, create=False) as manager:
        return sorted(manager.all_steps(), reverse=True)


def load_config(directory: str | Path, step: int | None = None) -> dict[str, Any]:
    """The JSON config stored with the checkpoint at ``step`` (default: the newest intact one).

    Raises:
      InputError: no checkpoint in ``directory``, or the wanted one (every one) is damaged.
    """
    args = lambda _: ocp.args.Composite(config=ocp.args.JsonRestore())  # noqa: E731
    return _restore_intact(directory, step, args, check_all=False)["config"]


def restore_checkpoint(directory: str | Path, template: TrainState, step: int | None = None) -> TrainState:
    """Restores the state saved at ``step`` (default: the newest intact one; a damaged newer one is skipped with
    a :class:`DamagedCheckpointWarning`) into the structure of ``template`` (a state built from the same
    config; its values are ignored). ``state.step`` says which step was restored.

    Raises:
      InputError: no checkpoint in ``directory``, the wanted one (every one) is damaged, or it holds a state of
        another structure (a checkpoint of an older release, whose optimizer state differs).
    """
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
    args = lambda _: ocp.args.Composite(state=ocp.args.StandardRestore(abstract))  # noqa: E731
    return _restore_intact(directory, step, args)["state"]


def restore_params(directory: str | Path, step: int | None = None, with_step: bool = False) -> tuple[Any, ...]:
    """Restores only the model's variables of the state saved at ``step`` (default: the newest intact one; a
    damaged newer one is skipped with a :class:`DamagedCheckpointWarning`), without a template: the
    optimizer state is neither needed nor read, so a checkpoint whose optimizer state has an older layout (or
    comes from another optimizer) still gives its model. Arrays are placed on the default device, whatever
    devices the checkpoint was saved from.

    Returns:
      ``(params, constants)`` as saved (nested dicts of arrays, the ``params`` and ``constants`` of the
      :class:`~inr_utils.training.TrainState`); with ``with_step``, ``(params, constants, step)`` where ``step``
      (int) is the step restored.

    Raises:
      InputError: no checkpoint in ``directory``, the wanted one (every one) is damaged, or it holds no model
        parameters (not a checkpoint of a training state).
    """

    def args(step_dir: Path) -> Any:
        saved = ocp.StandardCheckpointHandler().metadata(step_dir.absolute() / "state").tree
        if not isinstance(saved, dict) or "params" not in saved:
            raise _NotAState(f"the checkpoint '{step_dir}' holds no model parameters (not a training state); "
                             "pass a run folder written by a training script")
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        wanted = {name: jax.tree_util.tree_map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                                               saved[name])
                  for name in ("params", "constants", "step") if name in saved}
        return ocp.args.Composite(state=ocp.args.PyTreeRestore(
            wanted, restore_args=ocp.checkpoint_utils.construct_restore_args(wanted), partial_restore=True))

    state = _restore_intact(directory, step, args)["state"]
    params, constants = state["params"], state.get("constants") or {}
    return (params, constants, int(state["step"])) if with_step else (params, constants)


class _NotAState(ValueError):
    """A checkpoint that is intact but is not of a training state (no ``params``)."""


def _restore_intact(directory: str | Path, step: int | None, make_args: Callable[[Path], Any],
                    check_all: bool = True) -> Any:
    """``manager.restore`` of ``step``, or of the newest step that reads back intact (with ``check_all``,
    every file of the checkpoint is read first, not only the restored items). ``make_args(step folder)`` gives
    the restore arguments of a step."""
    steps = all_steps(directory)
    if not steps:
        raise InputError(f"no checkpoint found in '{directory}'; pass a run folder written by fit_image.py "
                         "(or its checkpoints/ folder)")
    if step is not None:
        if step not in steps:
            raise InputError(f"'{directory}' has no checkpoint of step {step}; it has steps "
                             f"{', '.join(map(str, steps))}")
        steps = [step]
    reasons = []
    for candidate in steps:
        try:
            if check_all:
                _check_readable(Path(directory) / str(candidate))
            with _manager(directory, create=False) as manager:
                restored = manager.restore(candidate, args=make_args(Path(directory) / str(candidate)))
        except _NotAState as err:
            raise InputError(str(err)) from None
        except Exception as err:  # noqa: BLE001 - Orbax/TensorStore raise many types for unreadable files
            if _is_structure_mismatch(err):  # intact, but not of this version's state: older steps are no better
                raise InputError(f"the checkpoint in '{directory}' was written by an older flax-inr whose optimizer "
                                 "state differs from this version's (or for another model); it cannot be restored: "
                                 "start a new run") from None
            reasons.append((candidate, _one_line(err)))
            continue
        for damaged, reason in reasons:
            warnings.warn(f"the checkpoint of step {damaged} in '{directory}' is damaged ({reason}); using the older "
                          f"checkpoint of step {candidate}", DamagedCheckpointWarning, stacklevel=3)
        return restored
    if len(steps) == 1:
        raise InputError(f"checkpoint '{Path(directory) / str(steps[0])}' is damaged ({reasons[0][1]}); restore it "
                         "from a copy or start a new run")
    details = "; ".join(f"step {damaged}: {reason}" for damaged, reason in reasons)
    raise InputError(f"every checkpoint in '{directory}' is damaged ({details}); restore them from a copy or start "
                     "a new run")


def _is_structure_mismatch(err: BaseException) -> bool:
    """Whether Orbax refused a restore because the saved tree differs from the template's (as a checkpoint of
    an older release does: its optimizer state had another structure), rather than because a file is damaged."""
    return isinstance(err, ValueError) and "tree structures do not match" in str(err)


def _check_readable(step_dir: Path) -> None:
    """Reads every stored value of a checkpoint back (OCDBT key-value stores through TensorStore, JSON items
    as JSON), raising on a truncated or unreadable file. Done before Orbax's restore because a read failing
    inside Orbax's asynchronous restore leaves its pending reads printing tracebacks from other threads."""
    import json

    import tensorstore as ts

    for item in sorted(p for p in step_dir.iterdir() if p.is_dir()):
        if (item / "manifest.ocdbt").is_file():
            store = ts.KvStore.open({"driver": "ocdbt", "base": f"file://{item.absolute()}"}).result()
            for key in store.list().result():
                store.read(key).result()
        elif (item / "metadata").is_file():
            json.loads((item / "metadata").read_text())


def _one_line(err: BaseException, limit: int = 120) -> str:
    """The first line of an exception's message, shortened: Orbax's can run to pages."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."
