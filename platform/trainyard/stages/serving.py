"""What a model server is to the deploy stage (the smoke test that proves it answers is in
`smoke`).

The platform tells the deploy stage where the server is, through its environment:

- `TRAINYARD_SERVING_URL`: where `/invocations` answers (both runtimes).
- `TRAINYARD_SERVING_DEPLOYMENT` (+ `_NAMESPACE`): a Kubernetes Deployment running
  `mlflow models serve -m models:/<name>@champion` (the chart's serving component);
  `serving_kubernetes` rolls it out.
- `TRAINYARD_SERVING_LOCAL_DIR`: the standalone runtime's model server, a local
  `mlflow models serve` process that `serving_local` restarts (pid file and log there).

With neither, there is no server and deploy moves the alias only. `deploy` picks the rollout.
"""

from __future__ import annotations

from typing import Protocol

from urllib3.util.retry import Retry

from trainyard.errors import UserError

URL_ENV = "TRAINYARD_SERVING_URL"
DEPLOYMENT_ENV = "TRAINYARD_SERVING_DEPLOYMENT"
NAMESPACE_ENV = "TRAINYARD_SERVING_NAMESPACE"
LOCAL_DIR_ENV = "TRAINYARD_SERVING_LOCAL_DIR"
TIMEOUT_ENV = "TRAINYARD_SERVING_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600.0


class ServingError(UserError):
    """The model server did not come up with the new model, or answered wrongly."""


class ModelServer(Protocol):
    url: str

    def describe(self) -> str: ...

    def roll_out(self, model_name: str, version: str) -> None:
        """Return once the server serves `models:/<name>@champion` anew, or raise."""

    def retire(self) -> None:
        """Stop serving (there is no champion left to serve)."""


def reach_retry(attempts: int) -> Retry:
    """Retries for reaching a server that just became ready: a Service routes to new pods a few
    seconds after they are Ready (endpoints, kube-proxy), and until then connections are refused
    or a proxy answers 502/503/504. On kind, a server just scaled up from zero was once answered
    by a bare 404 a second after its rollout, and the deploy rolled back a good model (the same
    run passed the next time): a healthy MLflow scoring server does not answer /invocations 404,
    so 404 is retried too, and one that lasts still fails.
    With backoff (1, 2, 4, 8, then 10 s: ~45 s for 8 attempts); any other answer, even a 500,
    is not retried: it is the model's."""
    return Retry(
        total=attempts,
        connect=attempts,
        read=0,
        other=0,
        status=attempts,
        status_forcelist=(404, 502, 503, 504),
        allowed_methods=frozenset({"POST"}),
        backoff_factor=0.5,
        backoff_max=10,
        raise_on_status=False,
    )
