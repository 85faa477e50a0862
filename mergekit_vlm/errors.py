"""The error every user-facing failure raises.

It is a ``click.ClickException`` so the stock ``mergekit-yaml`` (a click command) prints it as
one line, ``Error: ...``, and exits 1 instead of dumping a traceback; from Python it is an
ordinary exception.
"""

import click


class MergekitVlmError(click.ClickException):
    """A problem with the user's input, stated in one line with what to do about it."""

    def __init__(self, message: str):
        super().__init__(message.replace("\n", " "))

    def __str__(self) -> str:
        return self.message
