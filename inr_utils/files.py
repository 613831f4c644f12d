"""Writing files atomically: the one way every result file (text, PNG, figure) is written.

The content goes to a temporary file in the same folder, which is then renamed over the target: an interrupted
write never leaves half a file, and a reader sees the old file or the new one. The temporary file is opened
like any other (not with ``mkstemp``, which would make the result private, mode 0600), so the file's
permissions follow the umask.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "write_text"]


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Calls ``write(tmp)`` to write a temporary file next to ``path`` (same suffix, so writers that infer the
    format from it work), then renames it to ``path``; the temporary file is removed if ``write`` fails."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
