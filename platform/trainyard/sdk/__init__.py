"""trainyard's SDK for Python trainers: the trainer contract (docs/trainer-contract.md) in code.

Standard library, mlflow (skinny) and fsspec only, so `pip install trainyard` brings it into any
trainer image without the platform's own dependencies.
"""

from trainyard.sdk.checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from trainyard.sdk.distributed import Processes, init_process_group, processes
from trainyard.sdk.entrypoint import ArgumentParser, entrypoint, main, report_failure, run
from trainyard.sdk.environment import StageEnvironment, read_environment
from trainyard.sdk.errors import ContractError, UsageError
from trainyard.sdk.result import check_train_result, write_result, xcom_dir
from trainyard.sdk.tracking import run_tags, start_trial_run

CONTRACT_VERSION = 1

__all__ = [
    "CONTRACT_VERSION",
    "ArgumentParser",
    "Checkpoint",
    "ContractError",
    "Processes",
    "StageEnvironment",
    "UsageError",
    "check_train_result",
    "entrypoint",
    "init_process_group",
    "load_checkpoint",
    "main",
    "processes",
    "read_environment",
    "report_failure",
    "run",
    "run_tags",
    "save_checkpoint",
    "start_trial_run",
    "write_result",
    "xcom_dir",
]
