"""The standalone runtime's pod: the trainer command as a local process.

Same command, same arguments, same environment settings and the same result
contract as the KubernetesPodOperator: the process writes
`$XCOM_DIR/return.json`, which becomes the task's XCom. Its output streams
into the task log, as `get_logs=True` does for a pod.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from trainyard.errors import ERROR_MARK, ERROR_PREFIX
from trainyard.trainer.xcom import RETURN_FILE


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
        **kwargs: Any,
    ) -> None:
        super().__init__(do_xcom_push=do_xcom_push, **kwargs)
        self.cmds = cmds
        self.arguments = arguments or []
        self.env_vars = env_vars or {}
        self._process: subprocess.Popen[str] | None = None

    def command(self) -> list[str]:
        # The image's `python` is this interpreter here: same package, same versions.
        program = sys.executable if self.cmds[0] == "python" else self.cmds[0]
        return [program, *self.cmds[1:], *map(str, self.arguments)]

    def execute(self, context: Any) -> Any:
        with tempfile.TemporaryDirectory(prefix="trainyard-xcom-") as xcom_dir:
            env = {**os.environ, **self.env_vars, "XCOM_DIR": xcom_dir, "PYTHONUNBUFFERED": "1"}
            command = self.command()
            self.log.info("running %s", " ".join(command))
            self._process = subprocess.Popen(
                command,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            assert self._process.stdout is not None
            error = None
            for line in self._process.stdout:
                self.log.info("%s", line.rstrip())
                if line.startswith(ERROR_PREFIX) and ERROR_MARK in line:
                    error = line.strip()
            code = self._process.wait()
            if code != 0:
                # The stage's own one-line error names the problem; the exit code does not.
                where = f"{self.cmds[-1]} {self.arguments[:1]} exited with {code}"
                raise AirflowException(f"{error} ({where})" if error else where)
            if not self.do_xcom_push:
                return None
            result_file = Path(xcom_dir, RETURN_FILE)
            if not result_file.exists():
                raise AirflowException("the process succeeded but wrote no return.json")
            return json.loads(result_file.read_text())

    def on_kill(self) -> None:
        if self._process and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
