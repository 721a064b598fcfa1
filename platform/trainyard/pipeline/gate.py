"""Branching on the quality gate's decision."""

from __future__ import annotations

DEPLOY_TASK = "deploy"
SKIP_TASK = "skip_deployment"


def branch_for(deploy: object) -> str:
    # Anything but an explicit True skips deployment: the gate fails closed.
    return DEPLOY_TASK if deploy is True else SKIP_TASK
