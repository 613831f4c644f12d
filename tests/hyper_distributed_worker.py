"""A tiny hypernetwork trained for a few steps: the shared piece of the data-parallel tests (not a test module).

Imported by ``tests/test_hyper_training.py`` / ``tests/test_hyper_distributed.py`` for the single-device run, and
run as a script for the sharded ones:

    python tests/hyper_distributed_worker.py OUT.npz                       # every device of this process
    python tests/hyper_distributed_worker.py OUT.npz --coordinator localhost:PORT --num-processes 2 \
        --process-id I --local-devices 2                                   # one process of a multi-process run

    python tests/hyper_distributed_worker.py --run-script ARGS...          # train_hypernetwork.py ARGS with
                                                                           # the stand-in registered as "tiny"

With ``--script-args JSON`` (a list of train_hypernetwork.py flags, ``--coordinator`` etc. included) a process of
a multi-process run first runs the script that way, which joins the run through the script's own
``--coordinator`` flags, then trains the stand-in in the same run: one process per rank does both checks, so the
test pays Python's and JAX's start-up and the coordinator's set-up once instead of twice.

Process 0 writes OUT.npz: ``loss`` (per step) and the final parameters (``param/<path>``); with ``--checkpoint
DIR`` every process also saves the final state there and restores it (the multi-host checkpoint path).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

SIZE, CHANNELS, NUM_IMAGES, BATCH = 8, 3, 16, 8


class TinyHyper(nn.Module):
    """A stand-in hypernetwork keeping the ``__call__`` part of the contract: a linear image code modulates the
    hidden units of a two-layer sine INR. ``images (B, H, W, C)``, ``coords (P, 2)`` or ``(B, P, 2)`` ->
    ``(B, P, C)``."""

    width: int = 16
    channels: int = CHANNELS

    @nn.compact
    def __call__(self, images: jax.Array, coords: jax.Array) -> jax.Array:
        b = images.shape[0]
        code = jnp.tanh(nn.Dense(self.width, name="encoder")(images.reshape(b, -1)))
        if coords.ndim == 2:
            coords = jnp.broadcast_to(coords, (b, *coords.shape))
        hidden = jnp.sin(3.0 * nn.Dense(self.width, name="first")(coords)) * (1.0 + code[:, None, :])
        hidden = nn.relu(nn.Dense(self.width, name="hidden")(hidden))
        return nn.Dense(self.channels, name="out")(hidden)


@dataclasses.dataclass(frozen=True)
class TinyOptions:
    """Options of the stand-in as a registry entry (``--model tiny``, ``--set width=N``)."""

    width: int = 16

    def validate(self, config) -> None:
        if self.width <= 0:
            raise ValueError(f"width must be positive, got {self.width}")

    def build(self, config) -> TinyHyper:
        return TinyHyper(width=self.width, channels=config.channels)


def run_script(argv: list[str]) -> None:
    """Runs ``experiments/train_hypernetwork.py argv`` (as ``__main__``) with the stand-in registered as ``tiny``:
    the script end to end without depending on the real architectures."""
    import runpy
    from pathlib import Path

    from model_components.hypernetworks import HYPERNETWORKS

    if "tiny" not in HYPERNETWORKS:
        HYPERNETWORKS.register("tiny")(TinyOptions)
    script = Path(__file__).resolve().parent.parent / "experiments" / "train_hypernetwork.py"
    sys.argv = [str(script), *argv]
    runpy.run_path(str(script), run_name="__main__")


def dataset() -> np.ndarray:
    """``(NUM_IMAGES, SIZE, SIZE, CHANNELS)`` float32 smooth random images in [0, 1]."""
    rng = np.random.default_rng(0)
    y, x = np.meshgrid(np.linspace(0, 1, SIZE), np.linspace(0, 1, SIZE), indexing="ij")
    a = rng.uniform(0.2, 0.8, (NUM_IMAGES, 1, 1, CHANNELS))
    f = rng.uniform(0.5, 2.0, (NUM_IMAGES, 1, 1, CHANNELS))
    return (a + 0.2 * np.sin(2 * np.pi * f * (x + y)[None, :, :, None])).astype(np.float32)


def make_chunks(images: np.ndarray, batch: int, process_index: int = 0, process_count: int = 1):
    """``chunks(step, k)``: this process's rows of the batches of steps ``step .. step + k - 1``; the global batch
    of step s is a pure function of s (a stand-in for ``Batches.chunk``)."""
    local = batch // process_count

    def chunks(step: int, k: int) -> np.ndarray:
        out = []
        for s in range(step, step + k):
            rows = np.random.default_rng(s).permutation(images.shape[0])[:batch]
            out.append(images[rows[process_index * local:(process_index + 1) * local]])
        return np.stack(out)

    return chunks


def train(steps: int, mesh=None, steps_per_call: int = 2, jitter: float = 0.01, checkpoint: str | None = None):
    """Trains :class:`TinyHyper` for ``steps`` steps on this process's share; returns (state, losses)."""
    from hypernetwork_utils.training import (
        HyperTrainingSettings,
        build_hyper_optimizer,
        init_hyper_state,
        make_hyper_train_step,
        train_hypernetwork,
    )
    from inr_utils.callbacks import History

    settings = HyperTrainingSettings(batch_size=BATCH, lr=3e-3, warmup_epochs=1, steps=steps, jitter=jitter)
    model = TinyHyper()
    optimizer = build_hyper_optimizer(settings, steps_per_epoch=NUM_IMAGES // BATCH)
    state = init_hyper_state(model, optimizer, jax.random.key(0), (SIZE, SIZE, CHANNELS), mesh)
    step_fn = make_hyper_train_step(model.apply, optimizer, (SIZE, SIZE), jitter)
    chunks = make_chunks(dataset(), BATCH, jax.process_index(), jax.process_count())
    history = History()
    result = train_hypernetwork(state, chunks, jax.random.key(1), step_fn, steps, mesh, steps_per_call, [history])
    state = result.state
    if checkpoint is not None:
        from inr_utils.checkpoints import restore_checkpoint, save_checkpoint

        save_checkpoint(checkpoint, state, {"test": True})
        restored = restore_checkpoint(checkpoint, state)
        same = jax.tree.map(lambda a, b: bool(np.array_equal(np.asarray(a), np.asarray(b))),
                            jax.device_get(restored.params), jax.device_get(state.params))
        assert all(jax.tree.leaves(same)), "restored parameters differ"
    return state, history.loss[:, 0]


def flat_params(params) -> dict[str, np.ndarray]:
    """``{"param/<path>": array}`` of a params pytree (host copies)."""
    leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(params))[0]
    return {"param/" + jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--coordinator")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--local-devices", type=int)
    parser.add_argument("--checkpoint")
    parser.add_argument("--script-args", type=json.loads)
    args = parser.parse_args()
    from hypernetwork_utils.distributed import data_mesh, initialize_distributed

    if args.script_args is not None:  # the script joins the multi-process run with its own flags
        argv = sys.argv
        try:
            run_script(args.script_args)
        except SystemExit as exit_:
            if exit_.code:
                raise
        finally:
            sys.argv = argv
        sys.stdout.flush()
    elif args.coordinator:
        initialize_distributed(args.coordinator, args.num_processes, args.process_id, args.local_devices)
    mesh = data_mesh()
    state, losses = train(args.steps, mesh, checkpoint=args.checkpoint)
    if jax.process_index() == 0:
        np.savez(args.out, loss=losses, devices=len(jax.devices()), processes=jax.process_count(),
                 **flat_params(state.params))
    print(f"process {jax.process_index()}: {len(jax.devices())} devices, losses {losses}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--run-script"]:
        run_script(sys.argv[2:])
    sys.exit(main())
