"""Errors that mean "the input is wrong", reported to the user as one clear line."""


class StageError(Exception):
    """A pipeline stage cannot go on: bad data, missing input, unreachable service.

    The CLI prints the message and exits non-zero; nothing is written.
    """
