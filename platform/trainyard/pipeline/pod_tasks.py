"""Pod tasks: one definition, two runtimes.

A stage is defined once: its command (a pipeline spec's, e.g. `python -m digits`, or the
platform's `python -m trainyard.stages`) and arguments, with the platform's environment and
the `return.json` → XCom contract. The platform config's `runtime` picks how it runs: a
KubernetesPodOperator (trainer image, GPU resources, tolerations, node selector from the
config) or a local process (standalone). The DAG does not change.
"""

from __future__ import annotations

from typing import Any

from trainyard.pipeline.platform import PlatformConfig, StagePod


class PodTasks:
    def __init__(self, config: PlatformConfig) -> None:
        self.config = config

    def operator_class(self) -> type[Any]:
        if self.config.standalone:
            from trainyard.pipeline.local_pod import LocalPodOperator  # noqa: PLC0415

            return LocalPodOperator
        from airflow.providers.cncf.kubernetes.operators.pod import (  # noqa: PLC0415
            KubernetesPodOperator,
        )

        return KubernetesPodOperator

    def preload(self) -> None:
        """Import what this runtime's pod tasks need, in a process that forks DAG parses.

        The dag-processor pre-imports only the `airflow.*` modules a DAG file imports at
        its top; the operator is picked here, at parse time, so without this every forked
        parse on Kubernetes imports the cncf.kubernetes provider and the Kubernetes client
        (~0.7-0.9 s). Standalone loads only the local operator: no Kubernetes client.
        """
        self.operator_class()
        if not self.config.standalone:
            import trainyard.pipeline.kubernetes  # noqa: F401, PLC0415

    def kwargs(
        self,
        task_id: str,
        gpu: bool = False,
        long_running: bool = False,
        *,
        cmds: list[str],
        env: dict[str, str] | None = None,
        pod: StagePod | None = None,
    ) -> dict[str, Any]:
        """A stage's operator arguments: `cmds` with the platform's trainer environment and
        `env` on top; `pod`: the stage's own pod settings."""
        common: dict[str, Any] = {
            "task_id": task_id,
            "cmds": list(cmds),
            "env_vars": {**self.config.trainer.env, **(env or {})},
            "do_xcom_push": True,
        }
        if self.config.standalone:
            return common
        from trainyard.pipeline.kubernetes import pod_kwargs  # noqa: PLC0415

        return {
            **common,
            **pod_kwargs(self.config, gpu=gpu, pod=pod),
            "name": f"trainyard-{task_id.replace('_', '-').replace('.', '-')}",
            # Trials wait in their worker pod by default; deferred (platform.deferrable_trials),
            # they wait in the triggerer and a second worker pod collects each result.
            "deferrable": long_running and self.config.deferrable_trials,
        }

    def task(
        self,
        stage: str,
        options: dict[str, Any],
        task_id: str | None = None,
        *,
        cmds: list[str],
        env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A pod task running `stage`; `options` become `--key value` (templated; XComArgs ok)."""
        settings = self.kwargs(task_id or stage, cmds=cmds, env=env)
        return self.operator_class()(
            **settings, arguments=stage_arguments(stage, options), **kwargs
        )

    def partial(
        self,
        task_id: str,
        gpu: bool = False,
        *,
        cmds: list[str],
        env: dict[str, str] | None = None,
        pod: StagePod | None = None,
        **kwargs: Any,
    ) -> Any:
        """A mapped pod task: `.expand(arguments=...)` with one full argument list per item."""
        settings = self.kwargs(task_id, gpu, True, cmds=cmds, env=env, pod=pod)
        return self.operator_class().partial(**settings, **kwargs)


def stage_arguments(stage: str, options: dict[str, Any]) -> list[Any]:
    """`train`, {"model_uri": x} → ["train", "--model-uri", x]; values stay as given."""
    arguments: list[Any] = [stage]
    for key, value in options.items():
        arguments += [f"--{key.replace('_', '-')}", value]
    return arguments
