"""Run folders of multi-fit experiments: the folder itself, result tables written atomically, and
``configs.json`` (enough to re-run every fit).

Every classic experiment (``experiments/classic/``) writes into its run folder (``--out``, default
``runs/<time>-<experiment>``):

| file | what |
|---|---|
| ``results.csv`` | one row per fit (or render), machine-readable |
| ``results.md`` | the same results as Markdown table(s), with the settings |
| ``figure.png`` | the experiment's figure (some experiments add more PNGs) |
| ``configs.json`` | the command line, the settings and every fit's ``FitConfig``: enough to re-run it |
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inr_utils.config import FitConfig
from inr_utils.fitting import prepare_output_dir
from inr_utils.tables import Row, to_csv


def write_text(path: str | Path, text: str) -> None:
    """Writes ``text`` atomically (temporary file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_results(out: str | Path, rows: Sequence[Row], columns: Sequence[str], markdown: str) -> None:
    """Writes ``results.csv`` (``columns`` of ``rows``) and ``results.md`` (the given Markdown) into ``out``."""
    write_text(Path(out) / "results.csv", to_csv(rows, columns))
    write_text(Path(out) / "results.md", markdown)


def settings_markdown(settings: Mapping[str, Any]) -> str:
    """A bullet list of experiment settings for ``results.md``."""
    return "".join(f"- {key}: `{value}`\n" for key, value in settings.items())


def make_run_dir(out: str | Path | None, experiment: str) -> Path:
    """The run folder (created; refused with an ``InputError`` when it already holds files): ``out`` or
    ``runs/<time>-<experiment>``."""
    path = Path(out) if out is not None else Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{experiment}"
    return prepare_output_dir(path, FitConfig())


def jsonable(value: Any) -> Any:
    """``value`` with tuples/paths/numpy scalars turned into JSON types (recursively)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_configs(out: str | Path, experiment: str, args: argparse.Namespace | Mapping[str, Any],
                  runs: Sequence[Mapping[str, Any]]) -> None:
    """Writes ``configs.json``: the experiment, its command line (``sys.argv``), its settings (``args``) and
    ``runs``, one entry per fit with at least ``config`` (a ``FitConfig`` dict, usable with
    ``fit_image.py --config`` for file images) and the image it fits."""
    settings = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    payload = {"experiment": experiment, "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
               "settings": jsonable(settings), "runs": jsonable(list(runs))}
    write_text(Path(out) / "configs.json", json.dumps(payload, indent=2) + "\n")
