"""The one exception type for problems a user can fix (bad path, bad flag value, unwritable folder, ...)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class InputError(ValueError):
    """A problem with the user's input. The message names the problem and the fix; command-line scripts
    print it as one line on stderr and exit with code 2, without a traceback."""


@contextlib.contextmanager
def user_input() -> Iterator[None]:
    """Marks code that checks user input (flags, config files, option values): a ``ValueError`` raised inside
    (e.g. a config validator's "unknown option") becomes an :class:`InputError` with the same message, so a CLI
    reports it as bad input, while a ``ValueError`` raised anywhere else stays a bug with its traceback."""
    try:
        yield
    except InputError:
        raise
    except ValueError as err:
        raise InputError(str(err)) from None
