"""The SDK's own error types: what a trainer can fix, said in one line."""

from __future__ import annotations


class ContractError(Exception):
    """The stage's environment or result breaks the trainer contract (a missing variable,
    a result without its required keys). The message names what is wrong."""


class UsageError(Exception):
    """Bad command-line arguments: the entry point exits 2, as argparse does."""
