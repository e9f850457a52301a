"""The one error type the command line turns into a one-line message and exit code 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class CodecError(Exception):
    """A problem with the user's input or environment, stated in one line.

    The CLI prints ``error: <message>`` and exits with code 2; it never shows a traceback
    for this type.
    """


@contextmanager
def naming(what: str) -> Iterator[None]:
    """A CodecError raised inside names ``what`` (a stream, a frame) in front of its message."""
    try:
        yield
    except CodecError as exc:
        raise CodecError(f"{what}: {exc}") from None
