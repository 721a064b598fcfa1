"""The standalone runtime's pod: the trainer command as a local process.

Same command, same arguments, same environment settings and the same result
contract as the KubernetesPodOperator: the process writes
`$XCOM_DIR/return.json`, which becomes the task's XCom. Its output streams
into the task log, as `get_logs=True` does for a pod.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from trainyard.errors import UserError
from trainyard.stage_runner import StageExitError, StageProcess


class LocalPodOperator(BaseOperator):
    template_fields: Sequence[str] = ("arguments", "env_vars")
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        cmds: list[str],
        arguments: list[str] | None = None,
        env_vars: dict[str, str] | None = None,
        do_xcom_push: bool = True,
        cwd: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(do_xcom_push=do_xcom_push, **kwargs)
        self.cmds = cmds
        self.arguments = arguments or []
        self.env_vars = env_vars or {}
        # The folder the command runs in: a pipeline spec's (the image's WORKDIR on Kubernetes).
        self.cwd = cwd
        self._stage: StageProcess | None = None

    def command(self) -> list[str]:
        # The image's `python` is this interpreter here: same package, same versions.
        program = sys.executable if self.cmds[0] == "python" else self.cmds[0]
        return [program, *self.cmds[1:], *map(str, self.arguments)]

    def execute(self, context: Any) -> Any:
        command = self.command()
        self.log.info("running %s", " ".join(command))
        self._stage = StageProcess(command, self.env_vars, self.cwd)
        try:
            return self._stage.run(lambda line: self.log.info("%s", line), self.do_xcom_push)
        except StageExitError as failed:
            where = f"{self.cmds[-1]} {self.arguments[:1]} exited with {failed.code}"
            error = failed.error_line
            message = f"{error} ({where})" if error else where
        except UserError as exc:  # it did not start, or broke the contract
            message = str(exc)
        # The line in the task's log too: a stage that never ran printed nothing there.
        self.log.error("%s", message)
        raise AirflowException(message)

    def on_kill(self) -> None:
        if self._stage:
            self._stage.terminate()
