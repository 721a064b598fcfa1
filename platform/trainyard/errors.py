"""Errors that mean "the input is wrong", reported to the user as one clear line."""

# The trainer's one line on stderr: "trainyard.trainer <stage>: error: <what>". The laptop's
# pod operator and the failure alerts find it in a stage's output by these.
ERROR_PREFIX = "trainyard.trainer "
ERROR_MARK = ": error: "


def error_line(stage: str, error: object) -> str:
    return f"{ERROR_PREFIX}{stage}{ERROR_MARK}{error}"


class StageError(Exception):
    """A pipeline stage cannot go on: bad data, missing input, unreachable service.

    The CLI prints the message and exits non-zero; nothing is written.
    """
