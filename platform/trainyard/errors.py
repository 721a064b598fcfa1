"""Errors that mean "the input is wrong", reported to the user as one clear line."""

import contextlib
import os
import re
from pathlib import Path

# A stage's one line on stderr: "<program> <stage>: error: <what>" (`trainyard.stages deploy`,
# `digits validate`). The laptop's pod operator and the failure alerts find it in a
# stage's output by these.
ERROR_MARK = ": error: "
ERROR_LINE = re.compile(r"^[\w.-]+ [\w-]+" + re.escape(ERROR_MARK))


# Where a Kubernetes container's termination message goes (the container's default
# terminationMessagePath): the kubelet reads it into the pod's status, and the pod operator
# puts it into the task's exception, where the failure alert finds the line.
TERMINATION_LOG = "/dev/termination-log"


def error_line(program: str, stage: str, error: object) -> str:
    return f"{program} {stage}{ERROR_MARK}{error}"


def report_termination(line: str) -> None:
    """Leave `line` as the container's termination message, when there is a container.

    The kubelet creates the file in every container it starts; a laptop has none, and then
    nothing is written (the laptop's pod operator reads the line from the stage's stderr).
    """
    path = Path(os.environ.get("TRAINYARD_TERMINATION_LOG") or TERMINATION_LOG)
    if not path.is_file():
        return
    with contextlib.suppress(OSError):  # a read-only or odd mount: the line is on stderr
        path.write_text(line + "\n")


class UserError(Exception):
    """Something the user can fix: bad data or options, missing input, an unreachable service.

    Raised by the trainer's stages and by the `trainyard` command alike; their CLIs print the
    message as one line and exit non-zero, without a traceback.
    """
