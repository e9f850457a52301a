"""The one error type the command line turns into a one-line message and exit code 2."""


class CodecError(Exception):
    """A problem with the user's input or environment, stated in one line.

    The CLI prints ``error: <message>`` and exits with code 2; it never shows a traceback
    for this type.
    """
