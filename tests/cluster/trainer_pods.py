"""Trainer pods exactly as the DAG's pod operator builds them, from a release's platform.json.

The DAG is the pipeline factory applied to the shipped digits spec (dags/pipelines/digits.yaml)
with the release's platform config, as the dag-processor builds it: each stage's pod comes from
that DAG's own operator (a trial's from the mapped `train` task's partial arguments), turned into
a V1Pod by the KubernetesPodOperator's `build_pod_request_obj` (the XCom sidecar from the
`kubernetes_default` connection included) and labelled with the task instance, as it does
before creating it. The trials' arguments come from the factory's own expansion
(`factory.trial_arguments`). Runs in a subprocess with its own AIRFLOW_HOME: nothing of Airflow
leaks into the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DAG_ID = "ml_training_pipeline"
DIGITS_SPEC = Path(__file__).resolve().parents[2] / "dags" / "pipelines" / "digits.yaml"

BUILD = r"""
import json, os, sys
# Answers go to the original stdout; everything else printed (Airflow's logging) to stderr.
answers = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
from types import SimpleNamespace
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import ApiClient
from trainyard.pipeline import factory, grid, platform
from trainyard.pipeline.pod_tasks import stage_arguments
from trainyard.spec import load

SPEC = load(sys.argv[1])
# A CPU stage's task id in the DAG.
TASK_IDS = {"validate": "data_preparation.validate", "preprocess": "data_preparation.preprocess",
            "features": "data_preparation.features"}


def build(request):
    # kubernetes_default (the XCom sidecar's image), as the release's workers have it.
    os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"] = request["connection"]
    config = platform.parse(request["platform"])
    pipeline = factory.PipelineDag(SPEC, config)
    dag = pipeline.build()
    operators = []
    for stage in request["cpu_stages"]:
        operator = dag.get_task(TASK_IDS.get(stage, stage))
        # The real arguments are XComs and templates of a run: any stand-in schedules the same.
        operator.arguments = stage_arguments(stage, {"data": "s3://datasets/x"})
        operators.append((stage, operator, -1))
    if request["trials"]:
        space = {"lr": [round(0.001 * (i + 1), 6) for i in range(request["trials"])]}
        trials = grid.expand(space, request["trials"])
        # As the DAG's generate_hyperparams expands them.
        train_args = [pipeline.resolve(a) for a in SPEC.train.args]
        arguments = factory.trial_arguments(
            train_args, trials, lambda i: f"s3://datasets/runs/checkpoints/trial-{i:03d}.pt",
            pipeline.processes(SPEC.train))
        partial = dag.get_task("train").partial_kwargs
        operators += [("train", KubernetesPodOperator(task_id="train", **partial, arguments=args),
                       index) for index, args in enumerate(arguments)]
    built = []
    for task_id, operator, map_index in operators:
        ti = SimpleNamespace(dag_id=request["dag_id"], task_id=task_id, map_index=map_index,
                             try_number=1)
        context = {"ti": ti, "run_id": request["run_id"], "dag": SimpleNamespace()}
        pod = operator.build_pod_request_obj(context, dry_run=True)
        built.append(ApiClient().sanitize_for_serialization(pod))
    return built


# One request per line (JSON), one answer per line: Airflow is imported once per session.
for line in sys.stdin:
    try:
        answer = {"pods": build(json.loads(line))}
    except Exception as exc:  # the test reports it
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(answer), file=answers, flush=True)
"""


@dataclass(frozen=True)
class Release:
    """What a trainyard release gives the DAG: platform.json and kubernetes_default."""

    platform: dict[str, Any]
    kubernetes_connection: str

    @property
    def namespace(self) -> str:
        namespace: str = self.platform["trainer"]["namespace"]
        return namespace


class PodBuilder:
    """A subprocess that builds trainer pods on request (Airflow's import costs seconds)."""

    def __init__(self) -> None:
        self._home = tempfile.TemporaryDirectory()
        self._log = open(os.path.join(self._home.name, "builder.log"), "w")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [sys.executable, "-c", BUILD, str(DIGITS_SPEC)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={
                **os.environ,
                "AIRFLOW_HOME": self._home.name,
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            },
        )

    def build(
        self,
        release: Release,
        trials: int = 0,
        cpu_stages: tuple[str, ...] = (),
        run_id: str = "sim",
    ) -> list[dict[str, Any]]:
        """The pods of `cpu_stages` (no GPU) and of a sweep of `trials` train tasks (map
        indexes 0..trials-1), as the Kubernetes (camelCase) dicts the operator would create."""
        assert self._proc.stdin and self._proc.stdout
        request = {
            "platform": release.platform,
            "trials": trials,
            "cpu_stages": list(cpu_stages),
            "run_id": run_id,
            "dag_id": DAG_ID,
            "connection": release.kubernetes_connection,
        }
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        answer = json.loads(line) if line else {"error": f"it exited; see {self._log.name}"}
        if "error" in answer:
            raise RuntimeError(f"building the trainer pods failed: {answer['error']}")
        pods: list[dict[str, Any]] = answer["pods"]
        return pods

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        self._proc.wait(timeout=30)
        self._log.close()
        self._home.cleanup()
