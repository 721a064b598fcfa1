"""Errors that mean "the input is wrong", reported to the user as one clear line."""

# The trainer's one line on stderr: "trainyard.trainer <stage>: error: <what>". The laptop's
# pod operator and the failure alerts find it in a stage's output by these.
ERROR_PREFIX = "trainyard.trainer "
ERROR_MARK = ": error: "


def error_line(stage: str, error: object) -> str:
    return f"{ERROR_PREFIX}{stage}{ERROR_MARK}{error}"


class UserError(Exception):
    """Something the user can fix: bad data or options, missing input, an unreachable service.

    Raised by the trainer's stages and by the `trainyard` command alike; their CLIs print the
    message as one line and exit non-zero, without a traceback.
    """
