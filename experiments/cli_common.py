"""Shared command-line plumbing of the experiment scripts: one-line errors and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from inr_utils.errors import InputError

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr (exit code 2), naming the fix: see --help."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(EXIT_BAD_INPUT)


def run_cli(main: Callable[[], int]) -> None:
    """Runs ``main`` turning user-fixable problems into one stderr line and exit code 2 (no traceback)."""
    try:
        sys.exit(main())
    except InputError as err:
        sys.stderr.write(f"error: {err}\n")
        sys.exit(EXIT_BAD_INPUT)
