"""Helpers shared by the benchmark scripts in this folder: argument defaults, timing, rendered PSNR, the
PyTorch reference peer, peak memory, environment facts, the side-by-side table and the JSON result file.

The scripts import this module as ``common``: ``python benchmarks/NAME.py`` puts the script's folder first on
``sys.path``. A run writes its JSON to ``runs/benchmarks/NAME.json``; ``--record`` writes the recorded result
``benchmarks/results/NAME.json`` instead (what the README quotes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
#: The recorded results (committed; written only with ``--record``).
RESULTS_DIR = BENCH_DIR / "results"
#: Where a user's benchmark run writes its JSON.
USER_RESULTS_DIR = REPO_ROOT / "runs" / "benchmarks"
#: Default of ``--torch-peer``: the PyTorch reference implementation (classic PE + ReLU MLP) next to the
#: repository, as in the project's own checkout; a clone elsewhere passes ``--torch-peer PATH``.
TORCH_PEER = REPO_ROOT.parent / "shared" / "peers" / "torch_pe_mlp.py"


# --------------------------------------------------------------------------------------------- arguments


def make_parser(doc: str | None) -> argparse.ArgumentParser:
    """An argparse parser whose ``--help`` shows the script's module docstring verbatim."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_json_arg(parser: argparse.ArgumentParser, name: str) -> None:
    """Adds ``--json PATH`` (default ``runs/benchmarks/<name>.json``) and ``--record`` (write the recorded
    ``benchmarks/results/<name>.json`` instead); both set ``args.json``, the last one given wins."""
    default, recorded = USER_RESULTS_DIR / f"{name}.json", RESULTS_DIR / f"{name}.json"
    parser.add_argument("--json", type=Path, default=default,
                        help=f"where to write the results as JSON (default: {default.relative_to(REPO_ROOT)})")
    parser.add_argument("--record", dest="json", action="store_const", const=recorded,
                        help=f"update the recorded results {recorded.relative_to(REPO_ROOT)} instead (default: off)")


def add_torch_peer_arg(parser: argparse.ArgumentParser) -> None:
    """Adds ``--torch-peer PATH``: the PyTorch reference script (default :data:`TORCH_PEER`)."""
    parser.add_argument("--torch-peer", type=Path, default=TORCH_PEER,
                        help="the PyTorch reference script torch_pe_mlp.py (default: ../shared/peers/torch_pe_mlp.py "
                             "next to the repository)")


def torch_peer_missing(peer: Path) -> str | None:
    """A one-line note when the PyTorch reference cannot run (script absent, PyTorch not importable), else None."""
    if not Path(peer).is_file():
        return (f"note: PyTorch reference script '{peer}' not found; pass --torch-peer PATH (or --skip-torch); "
                "PyTorch reference skipped")
    if not torch_available():
        return "note: PyTorch is not importable in this environment (pip install -e '.[bench]'); PyTorch " \
               "reference skipped"
    return None


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def int_list(text: str) -> list[int]:
    """argparse type: comma-separated positive integers, returned sorted and without duplicates."""
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 500,1000, got {text!r}") from None
    if not values or values[0] <= 0:
        raise argparse.ArgumentTypeError(f"expected positive integers such as 500,1000, got {text!r}")
    return values


# --------------------------------------------------------------------------------------------- measuring


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """``with stopwatch() as t: ...`` then ``t["s"]`` holds the wall seconds of the block."""
    timing: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield timing
    finally:
        timing["s"] = time.perf_counter() - start


def peak_rss_mb() -> float:
    """Peak resident set size of this process's address space so far, in MiB.

    On Linux this is ``VmHWM`` of ``/proc/self/status``, which starts afresh at ``exec``. ``ru_maxrss`` does
    not: a subprocess inherits its parent's peak (Linux carries the old address space's high-water mark
    over ``exec``, and Python spawns with vfork), so a fresh render process started by a process that has
    just fitted a model would report the parent's peak. ``ru_maxrss`` is the fallback elsewhere (KiB on
    Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def rendered_psnr(apply_fn: Callable, variables: Any, image: np.ndarray) -> dict[str, float]:
    """Renders the INR at the image's resolution and scores it against ``image`` ``(H, W, C)`` in [0, 1].

    Returns:
      ``{"psnr": dB of the render clipped to [0, 1] (what the saved PNG shows; the library's metrics.json
      "psnr"), "psnr_unclipped": dB of the raw network output}``.
    """
    from inr_utils.metrics import psnr
    from inr_utils.rendering import render

    height, width = image.shape[:2]
    recon = render(apply_fn, variables, height, width)
    return {"psnr": float(psnr(np.clip(recon, 0.0, 1.0), image)), "psnr_unclipped": float(psnr(recon, image))}


def environment() -> dict[str, Any]:
    """Facts that make timings comparable: host, CPU count, load, library versions, JAX backend/devices."""
    import jax

    info: dict[str, Any] = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if hasattr(os, "getloadavg"):
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return info


# --------------------------------------------------------------------------------------------- torch peer


def torch_available() -> bool:
    """Whether PyTorch can be imported by this interpreter (the peer runs with the same one)."""
    return importlib.util.find_spec("torch") is not None


def run_torch_peer(image_png: Path, steps: int, batch: int = 4096, lr: float = 1e-3, size: int = 256,
                   seed: int = 0, peer: Path = TORCH_PEER, timeout_s: float | None = None) -> dict[str, Any]:
    """Runs the PyTorch reference (``shared/peers/torch_pe_mlp.py``) in a subprocess on ``image_png``.

    Returns:
      the peer's JSON line (``train_s``: seconds of the training steps only, ``psnr``: final full-image dB,
      ``steps``, ``params``, ...) plus ``wall_s``, the subprocess's whole wall time (start-up included).

    Raises:
      RuntimeError: the peer is missing, failed, or printed no JSON line (its stderr is in the message).
    """
    if not peer.is_file():
        raise RuntimeError(f"torch peer script '{peer}' not found")
    cmd = [sys.executable, str(peer), str(image_png), "--steps", str(steps), "--batch", str(batch),
           "--lr", str(lr), "--size", str(size), "--seed", str(seed)]
    with stopwatch() as t:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"torch peer exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return {**parse_last_json_line(proc.stdout, "torch peer"), "wall_s": round(t["s"], 2)}


def parse_last_json_line(stdout: str, who: str) -> dict[str, Any]:
    """The last line of ``stdout`` that parses as a JSON object (what our subprocesses print)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise RuntimeError(f"{who} printed no JSON result line; its output was:\n{stdout[-2000:]}")


# --------------------------------------------------------------------------------------------- output


def format_cell(value: Any, digits: int = 2) -> str:
    """Table cell text: floats with ``digits`` decimals, ``None``/NaN as ``-``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """Prints rows as aligned columns (first column left-aligned, the others right-aligned)."""
    cells = [[format_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        pairs = enumerate(zip(values, widths, strict=True))
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in pairs)

    if title:
        print(f"\n{title}")
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(line(row))


def write_json(path: Path, results: dict[str, Any]) -> None:
    """Writes ``results`` as indented JSON (parent folders created; NaN/inf written as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite_or_none(results), indent=2) + "\n")
    print(f"results written to {path}")


def _finite_or_none(value: Any) -> Any:
    """Replaces non-finite floats by ``None`` recursively (strict JSON has no NaN/inf)."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
