"""The one exception type that means "the user's input is wrong"."""


class XreconInputError(ValueError):
    """Bad input from the user: unreadable file, impossible geometry, missing structure.

    The message is one line that says what is wrong and, where it helps, what would be right.
    The ``xrecon`` command prints it without a traceback and exits with status 2.
    """
