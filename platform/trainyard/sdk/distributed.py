"""Multi-process trials: this process's place among torchrun's processes.

torchrun (or the platform, on Kubernetes) sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT. The SDK reads them without importing torch, so it stays installable in any image;
`init_process_group` imports torch only when called, for trainers that use it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from trainyard.sdk.environment import StageEnvironment, read_environment
from trainyard.sdk.errors import ContractError


@dataclass(frozen=True)
class Processes:
    """Rank `rank` of `world_size` processes; `local_rank` picks this process's GPU."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs the model to MLflow, saves checkpoints and writes return.json."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def processes(environment: StageEnvironment | None = None) -> Processes:
    env = environment or read_environment()
    return Processes(env.rank, env.world_size, env.local_rank)


def init_process_group(
    backend: str | None = None, environment: StageEnvironment | None = None
) -> Processes:
    """Join torchrun's process group (nccl with CUDA, gloo otherwise) when there is more than
    one process; this process's place either way. Imports torch: only trainers that use it
    call this."""
    env = environment or read_environment()
    place = processes(env)
    if not place.distributed:
        return place
    env.require("master_addr", "master_port")
    import torch  # noqa: PLC0415 - the SDK must not need torch to import
    import torch.distributed as dist  # noqa: PLC0415

    chosen = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if chosen == "nccl":
        torch.cuda.set_device(place.local_rank)
    options: dict[str, Any] = {"rank": place.rank, "world_size": place.world_size}
    try:
        dist.init_process_group(chosen, init_method="env://", **options)
    except (RuntimeError, ValueError) as exc:
        raise ContractError(
            f"cannot join the process group at {env.master_addr}:{env.master_port} "
            f"as rank {place.rank} of {place.world_size}: {exc}"
        ) from None
    return place


def leave_process_group() -> None:
    """Destroy the process group this process joined, if any; `main` calls it on the way out.

    A gloo rank that exits with its group alive aborts in interpreter shutdown ("terminate
    called without an active exception", SIGABRT) while rank 0 is still logging, and torchrun
    then fails the whole trial. Looks only at an already imported torch.distributed.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
