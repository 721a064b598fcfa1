"""The trainer contract's environment as one typed object.

The platform sets the same variables on Kubernetes and on the laptop; a trainer reads them here
instead of from `os.environ`, so a missing or malformed one is one clear line naming it.
Everything is optional when read (a trainer may run by hand, outside a pipeline);
`require` says which ones this trainer cannot do without.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from trainyard.sdk.errors import ContractError

# Field name -> the variable that carries it.
VARIABLES = {
    "pipeline": "TRAINYARD_PIPELINE",
    "stage": "TRAINYARD_STAGE",
    "dag_run_id": "TRAINYARD_DAG_RUN_ID",
    "ds": "TRAINYARD_DS",
    "work_url": "TRAINYARD_WORK_URL",
    "termination_log": "TRAINYARD_TERMINATION_LOG",
    "experiment": "TRAINYARD_EXPERIMENT",
    "run_name": "TRAINYARD_RUN_NAME",
    "trial": "TRAINYARD_TRIAL",
    "checkpoint_url": "TRAINYARD_CHECKPOINT_URL",
    "checkpoint_every": "TRAINYARD_CHECKPOINT_EVERY",
    "processes": "TRAINYARD_PROCESSES",
    "rank": "RANK",
    "world_size": "WORLD_SIZE",
    "local_rank": "LOCAL_RANK",
    "master_addr": "MASTER_ADDR",
    "master_port": "MASTER_PORT",
}


@dataclass(frozen=True)
class StageEnvironment:
    """What the platform told this stage. None: the variable is not set."""

    pipeline: str | None = None
    stage: str | None = None
    dag_run_id: str | None = None
    ds: str | None = None
    work_url: str | None = None
    termination_log: str | None = None
    experiment: str | None = None
    run_name: str | None = None
    trial: int | None = None
    checkpoint_url: str | None = None
    checkpoint_every: int | None = None
    processes: int | None = None
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process of a trial that logs the model and writes return.json."""
        return self.rank == 0

    @property
    def is_trial(self) -> bool:
        """A train trial (the platform set TRAINYARD_TRIAL)."""
        return self.trial is not None

    def require(self, *names: str) -> StageEnvironment:
        """This object, or ContractError naming the first variable of `names` that is unset."""
        for name in names:
            if name not in VARIABLES:
                raise ValueError(f"{name!r} is not a contract field ({', '.join(VARIABLES)})")
            if getattr(self, name) is None:
                raise ContractError(
                    f"{VARIABLES[name]} is not set: the platform sets it for every "
                    "pipeline stage (run this trainer from a pipeline, or export it)"
                )
        return self


_INTS = {
    "trial",
    "checkpoint_every",
    "processes",
    "rank",
    "world_size",
    "local_rank",
    "master_port",
}


def _integer(variable: str, text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ContractError(f"{variable}={text!r} is not an integer") from None
    if value < minimum:
        raise ContractError(f"{variable}={value} must be at least {minimum}")
    return value


# The smallest value each integer variable may take.
_MINIMUM = {"checkpoint_every": 1, "processes": 1, "world_size": 1, "master_port": 1}


def read_environment(environ: Mapping[str, str] | None = None) -> StageEnvironment:
    """The contract's variables from `environ` (default: this process's environment)."""
    source = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name, variable in VARIABLES.items():
        text = source.get(variable, "").strip()
        if not text:
            continue
        values[name] = _integer(variable, text, _MINIMUM.get(name, 0)) if name in _INTS else text
    environment = StageEnvironment(**values)  # type: ignore[arg-type]
    if environment.rank >= environment.world_size:
        raise ContractError(
            f"RANK={environment.rank} is not below WORLD_SIZE={environment.world_size}"
        )
    return environment
