"""The one exception type users see for bad input."""


class MlmolError(ValueError):
    """Bad input or an unusable state, with a message that says how to fix it.

    The command line prints the message and exits with status 2; no traceback.
    """
