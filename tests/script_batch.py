"""Runs several scripts one after another in this one process, each as ``__main__`` with its own ``sys.argv``, its
stdout and stderr (file descriptors 1 and 2, so output written below Python is caught too) in files of its own, and
its exit code recorded: the quick runs of the test suite (``--help``, bad input refused before any work) without
paying Python's and JAX's start-up once per run. Not a test module; ``conftest.run_scripts_in_one_process`` starts it.

    python tests/script_batch.py CASES.json

CASES.json: ``[{"path": SCRIPT, "args": [...], "stdout": FILE, "stderr": FILE}, ...]``; the exit codes are written
back to ``CASES.json.codes`` as a JSON list. Between runs the state a script may change in the process is put back:
warning filters and the record of warnings already shown, ``warnings.showwarning``, signal handlers, logging
handlers, ``sys.path``, the working directory.
"""

from __future__ import annotations

import json
import logging
import os
import runpy
import signal
import sys
import traceback
import warnings


def run_one(path: str, args: list[str], stdout: str, stderr: str) -> int:
    """Runs ``path`` as ``__main__`` with ``args``; returns its exit code (1 for an uncaught exception, whose
    traceback goes to its stderr like Python's own)."""
    saved_fds = os.dup(1), os.dup(2)
    saved = (list(warnings.filters), warnings.showwarning, list(sys.path), os.getcwd(), list(logging.root.handlers),
             {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}, sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
    try:
        sys.argv = [path, *args]
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))  # as `python PATH` does
        runpy.run_path(path, run_name="__main__")
        code = 0
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            code = exit_.code or 0
        else:  # sys.exit("message"): Python prints it and exits with 1
            print(exit_.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001  (an uncaught exception: its traceback, exit 1, as Python does)
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        for fd in saved_fds:
            os.close(fd)
        filters, showwarning, path_list, cwd, handlers, handlers_by_signal, argv = saved
        warnings.resetwarnings()  # also forgets which warnings were already shown ("once", "default")
        warnings.filters[:] = filters
        warnings.showwarning = showwarning
        sys.path[:] = path_list
        os.chdir(cwd)
        logging.root.handlers[:] = handlers
        for signum, handler in handlers_by_signal.items():
            signal.signal(signum, handler)
        sys.argv = argv
    return code


def main() -> None:
    cases_file = sys.argv[1]
    with open(cases_file) as f:
        cases = json.load(f)
    codes = [run_one(c["path"], c["args"], c["stdout"], c["stderr"]) for c in cases]
    with open(cases_file + ".codes", "w") as f:
        json.dump(codes, f)


if __name__ == "__main__":
    main()
