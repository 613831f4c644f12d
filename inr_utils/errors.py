"""The one exception type for problems a user can fix (bad path, bad flag value, unwritable folder, ...)."""


class InputError(ValueError):
    """A problem with the user's input. The message names the problem and the fix; command-line scripts
    print it as one line on stderr and exit with code 2, without a traceback."""
