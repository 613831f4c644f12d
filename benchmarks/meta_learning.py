#!/usr/bin/env python
"""Meta-learned initialisation on CIFAR-10: held-out PSNR after 1, 3 and 10 inner SGD steps from the meta-learned
initialisation against a random one (same SIREN, same inner SGD).

Data: the CIFAR-10 training batch at --cifar (default ``../shared/data/cifar10``, 10,000 images); 500 held out
(seed 0, ``train_val_split``, as the hypernetworks), the rest train. The run is ``experiments/meta_learn.py``'s
default (``hypernetwork_utils.meta_run.run_meta_training``): SIREN width 64, depth 3 (4 sine layers, 12,867
parameters), MAML on every weight with learned per-parameter inner learning rates (Meta-SGD, start 0.1), 3 inner
steps, second order, Adam 1e-3 with cosine decay to 1e-4, batch 16, --steps outer steps, seed --seed (it also picks
the held-out images). The random baseline is the SIREN's own init adapted with constant SGD lr 0.1 (``random``) and
with the best of 0.01..3 chosen on the held-out images themselves (``random_best_lr``).

Target (issue 13 item 8): >= 25 dB mean held-out PSNR after 3 steps.

    python benchmarks/meta_learning.py --steps 500 --record     # the recorded measurement (~4 min on 2 quiet cores)
    python benchmarks/meta_learning.py --quick                  # smoke run
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import common


def main() -> None:
    parser = common.make_parser(__doc__)
    parser.add_argument("--cifar", default=str(common.REPO_ROOT.parent / "shared" / "data" / "cifar10"),
                        help="CIFAR-10 folder (default: ../shared/data/cifar10)")
    parser.add_argument("--steps", type=common.positive_int, default=500, help="outer steps (default: 500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the init, split and batch order (default: 0)")
    parser.add_argument("--quick", action="store_true", help="10 outer steps, 50 held-out images (default: off)")
    common.add_json_arg(parser, "meta_learning")
    args = parser.parse_args()

    from hypernetwork_utils.meta_learning import MetaConfig
    from hypernetwork_utils.meta_run import META_DEFAULTS, run_meta_training

    settings = META_DEFAULTS.from_dict({**META_DEFAULTS.to_dict(), "steps": 10 if args.quick else args.steps,
                                        "seed": args.seed,
                                        **({"val_count": 50} if args.quick else {})})
    meta = MetaConfig()
    with tempfile.TemporaryDirectory() as tmp:
        metrics = run_meta_training(meta, args.cifar, settings, Path(tmp) / "run")
        adaptation = (Path(tmp) / "run" / "adaptation.json").read_text()
    import json

    results = {"benchmark": "meta_learning", "environment": common.environment(), "meta": meta.to_dict(),
               "training": settings.to_dict(), "metrics": metrics, "adaptation": json.loads(adaptation)}
    rows = [[name, *[at[k] for k in ("0", "1", "3", "10")]] for name, at in metrics["psnr_at"].items()]
    common.print_table(["init", "0 steps", "1 step", "3 steps", "10 steps"], rows, "held-out PSNR (dB)")
    common.write_json(args.json, results)


if __name__ == "__main__":
    main()
