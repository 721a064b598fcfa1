"""Data-parallel training: N processes, one per device, with DistributedDataParallel.

`launch` is the trainer's own launcher (what torchrun does, for one node): it picks a
free local port for the process group's rendezvous, starts N worker processes (spawned,
so CUDA initialises in each), waits for all of them and hands back rank 0's result. A
worker that fails with a `UserError` leaves its one-line message for the launcher, which
raises it; if one worker dies, the others are stopped. NCCL on GPUs, gloo on CPU.
"""

from __future__ import annotations

import logging
import pickle
import socket
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.multiprocessing.spawn import (
    ProcessExitedException,
    ProcessRaisedException,
    start_processes,
)

from trainyard.errors import UserError
from trainyard.sdk import Processes

log = logging.getLogger(__name__)

RESULT_FILE = "result.pkl"


@dataclass(frozen=True)
class Replica:
    """This process's place in data-parallel training: rank `rank` of `world` processes."""

    rank: int = 0
    world: int = 1

    @property
    def lead(self) -> bool:
        """Rank 0 talks to MLflow, writes checkpoints and returns the result (the contract's
        main process)."""
        return Processes(self.rank, self.world).is_main

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def all_sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            dist.all_reduce(value)
        return value

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


SINGLE = Replica()


def backend_for(device_type: str) -> str:
    return "nccl" if device_type == "cuda" else "gloo"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def check_processes(processes: int, device_type: str) -> None:
    if processes < 1:
        raise UserError(f"processes must be at least 1, got {processes}")
    if device_type == "cuda" and processes > torch.cuda.device_count():
        raise UserError(
            f"{processes} training processes need {processes} GPUs; "
            f"torch sees {torch.cuda.device_count()}"
        )


def launch(
    processes: int,
    device_type: str,
    work: Callable[..., dict[str, Any]],
    arguments: tuple[Any, ...],
) -> dict[str, Any]:
    """Run `work(replica, device, *arguments)` in `processes` processes; rank 0's result."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="trainyard-ddp-") as folder:
        log.info("starting %d training processes (%s)", processes, backend_for(device_type))
        try:
            start_processes(  # type: ignore[no-untyped-call]
                _worker,
                args=(
                    processes,
                    port,
                    device_type,
                    folder,
                    work,
                    arguments,
                    log.getEffectiveLevel(),
                ),
                nprocs=processes,
                join=True,
                start_method="spawn",
            )
        except (ProcessRaisedException, ProcessExitedException) as exc:
            errors = sorted(Path(folder).glob("error-*.txt"))
            if errors:
                raise UserError(errors[0].read_text().strip()) from None
            raise UserError(
                f"a training process failed: {str(exc).strip().splitlines()[0]}"
            ) from None
        result: dict[str, Any] = pickle.loads(Path(folder, RESULT_FILE).read_bytes())
        return result


def _worker(
    rank: int,
    world: int,
    port: int,
    device_type: str,
    folder: str,
    work: Callable[..., dict[str, Any]],
    arguments: tuple[Any, ...],
    log_level: int,
) -> None:
    logging.basicConfig(
        level=log_level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s rank{rank} %(name)s: %(message)s",
    )
    if device_type == "cuda":
        torch.cuda.set_device(rank)
        device = torch.device("cuda", rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group(
        backend_for(device_type),
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
    )
    try:
        result = work(Replica(rank, world), device, *arguments)
        if rank == 0:
            Path(folder, RESULT_FILE).write_bytes(pickle.dumps(result))
    except UserError as exc:
        Path(folder, f"error-{rank}.txt").write_text(str(exc))
        raise
    except BaseException:
        Path(folder, f"error-{rank}.txt").write_text(
            f"training process {rank} failed: {traceback.format_exc().strip().splitlines()[-1]}"
        )
        raise
    finally:
        # Without this, a worker that returns first can tear the group down under the others.
        if dist.is_initialized():
            dist.destroy_process_group()
