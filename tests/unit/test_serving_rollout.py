"""The deploy step's serving rollout: where the server is, when a rollout is done, the smoke test.

The Kubernetes Deployment is judged from objects shaped as the API server returns them
(no API server exists here); the smoke test talks HTTP to a real local server that
answers the way a model server can go wrong.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from mlflow.types import Schema, TensorSpec

from trainyard.stages import serving, serving_kubernetes, serving_local
from trainyard.stages.deploy import model_server
from trainyard.stages.smoke import SmokeExample, smoke_test

pytestmark = pytest.mark.unit


def deployment(generation=2, observed=2, replicas=2, updated=2, total=2, available=2, **extra):
    return {
        "metadata": {"generation": generation, "annotations": extra.get("annotations", {})},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": updated,
            "replicas": total,
            "availableReplicas": available,
            "conditions": extra.get("conditions", []),
        },
    }


def test_environment_picks_the_server():
    k8s = model_server(
        {
            serving.DEPLOYMENT_ENV: "ty-serving",
            serving.NAMESPACE_ENV: "ml",
            serving.URL_ENV: "http://ty-serving.ml:8080",
        }
    )
    assert isinstance(k8s, serving_kubernetes.KubernetesDeployment)
    assert k8s.describe() == "deployment/ty-serving in ml"
    local = model_server({serving.LOCAL_DIR_ENV: "/tmp/x", serving.URL_ENV: "http://127.0.0.1:9"})
    assert isinstance(local, serving_local.LocalModelServer)
    assert model_server({serving.URL_ENV: "http://x"}) is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({serving.DEPLOYMENT_ENV: "d"}, "TRAINYARD_SERVING_URL is not"),
        (
            {serving.LOCAL_DIR_ENV: "/x", serving.URL_ENV: "http://x", serving.TIMEOUT_ENV: "ten"},
            "TRAINYARD_SERVING_TIMEOUT_S='ten' is not a number",
        ),
    ],
)
def test_incomplete_serving_settings_are_named(env, message):
    with pytest.raises(serving.ServingError, match=message):
        model_server(env)


def test_first_rollout_scales_to_the_annotated_replicas_later_ones_keep_the_scale():
    idle = deployment(replicas=0, annotations={serving_kubernetes.REPLICAS_ANNOTATION: "3"})
    assert serving_kubernetes.target_replicas(idle) == 3
    assert serving_kubernetes.target_replicas(deployment(replicas=0)) == 1
    assert serving_kubernetes.target_replicas(deployment(replicas=5)) == 5  # an operator scaled it
    with pytest.raises(serving.ServingError, match=r"trainyard\.io/replicas='many'"):
        serving_kubernetes.target_replicas(
            deployment(replicas=0, annotations={"trainyard.io/replicas": "many"})
        )


def test_rollout_patch_changes_the_pod_template():
    now = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)
    patch = serving_kubernetes.rollout_patch("7", 2, now)
    assert patch["spec"]["replicas"] == 2
    assert patch["spec"]["template"]["metadata"]["annotations"] == {
        "trainyard.io/model-version": "7",
        "trainyard.io/rolled-out-at": "2026-11-21T12:00:00+00:00",
    }


@pytest.mark.parametrize(
    ("state", "done", "left"),
    [
        (deployment(observed=1), False, "not seen the new template"),
        (deployment(updated=1), False, "1 of 2 new replicas created"),
        (deployment(total=3), False, "1 old replicas still terminating"),
        (deployment(available=1), False, "1 of 2 new replicas available"),
        (deployment(), True, "2 replicas available"),
    ],
)
def test_rollout_is_done_when_every_replica_is_new_and_available(state, done, left):
    finished, message = serving_kubernetes.rollout_state(state)
    assert finished is done
    assert left in message


def test_a_stalled_rollout_fails_at_once():
    stalled = deployment(
        updated=1,
        conditions=[
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "ty-serving-5d" has timed out progressing.',
            }
        ],
    )
    with pytest.raises(serving.ServingError, match="rollout stalled: ReplicaSet"):
        serving_kubernetes.rollout_state(stalled)


class _Answers(BaseHTTPRequestHandler):
    answer: tuple[int, str] = (200, "{}")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        code, body = self.answer
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()


# Three rows of 64 pixels in, ten float scores per row out (the digits model's signature).
EXAMPLE = SmokeExample(
    payload=json.dumps({"inputs": np.zeros((3, 64)).tolist()}),
    rows=3,
    outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 10))]),
)
EXPECTED = np.eye(10)[[1, 2, 3]]


def answering(server, code, body):
    server.RequestHandlerClass.answer = (code, body)  # type: ignore[attr-defined]
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_smoke_test_passes_when_the_answer_fits_the_signature(server):
    logits = (EXPECTED * 5).tolist()
    url = answering(server, 200, json.dumps({"predictions": logits}))
    assert smoke_test(url, EXAMPLE) == 3


@pytest.mark.parametrize(
    ("code", "body", "message"),
    [
        # who answered, by its Server header (http.server's here, uvicorn for MLflow's)
        (500, "model failed to load", r"answered 500 \(BaseHTTP/[^)]+\): model failed to load"),
        (200, "not json", "unexpected answer"),
        (200, json.dumps({"predictions": [[1, 0]] * 3}), r"shape \(3, 2\), the signature says"),
        (
            200,
            json.dumps({"predictions": np.eye(10)[[1, 2]].tolist()}),
            "has 2 rows for the example's 3 rows",
        ),
    ],
)
def test_smoke_test_names_what_is_wrong(server, code, body, message):
    with pytest.raises(serving.ServingError, match=message):
        smoke_test(answering(server, code, body), EXAMPLE)


def test_smoke_test_of_an_unreachable_server(tmp_path: Path):
    with pytest.raises(serving.ServingError, match="unreachable"):
        smoke_test("http://127.0.0.1:9", EXAMPLE, timeout_s=2, attempts=1)


def test_smoke_test_waits_for_a_server_the_service_reaches_late():
    """Right after a rollout the Service may refuse connections for a few seconds (endpoints,
    kube-proxy): a single try failed the deploy, and its retries then refused the version the
    failed try had tagged rolled back."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there: connections are refused until the server starts
    logits = json.dumps({"predictions": (EXPECTED * 5).tolist()})

    def start_late() -> None:
        time.sleep(1.5)
        httpd = ThreadingHTTPServer(("127.0.0.1", port), _Answers)
        started.append(httpd)
        httpd.serve_forever()

    started: list[ThreadingHTTPServer] = []
    _Answers.answer = (200, logits)
    threading.Thread(target=start_late, daemon=True).start()
    try:
        assert smoke_test(f"http://127.0.0.1:{port}", EXAMPLE) == 3
    finally:
        for httpd in started:
            httpd.shutdown()


def test_smoke_test_retries_a_proxys_503_but_not_the_models_500(server):
    class Unavailable(_Answers):
        left = 2
        posts = 0

        def do_POST(self) -> None:
            Unavailable.posts += 1
            if Unavailable.left:
                Unavailable.left -= 1
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(503)
                self.end_headers()
                return
            super().do_POST()

    logits = json.dumps({"predictions": (EXPECTED * 5).tolist()})
    server.RequestHandlerClass = Unavailable
    url = answering(server, 200, logits)
    assert smoke_test(url, EXAMPLE) == 3
    assert Unavailable.left == 0
    assert Unavailable.posts == 3
    with pytest.raises(serving.ServingError, match="answered 500"):
        smoke_test(answering(server, 500, "model failed"), EXAMPLE)
    assert Unavailable.posts == 4, "a 500 is the model's answer: not retried"


def test_local_server_that_cannot_load_the_model_fails_with_its_log(tmp_path, monkeypatch):
    # An empty registry: `mlflow models serve` finds no `digits@champion` and exits.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/empty.db")
    server = serving_local.LocalModelServer(
        tmp_path / "serving", "http://127.0.0.1:9", timeout_s=120
    )
    with pytest.raises(serving.ServingError, match=r"model server exited(.|\n)*digits"):
        server.roll_out("digits", "1")
    assert server.running_pid() is None


def test_a_deployment_without_cluster_credentials_is_a_serving_error(tmp_path, monkeypatch):
    # Neither in a pod nor with a kubeconfig: the deploy step must roll back, not crash.
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    server = serving_kubernetes.KubernetesDeployment(
        "ty-serving", "ml", "http://ty-serving:8080", 5
    )
    with pytest.raises(serving.ServingError, match="no Kubernetes credentials"):
        server.roll_out("digits", "3")


class _NotYet(_Answers):
    """A bare 404 (no body) for the first `misses` requests, then the model's answer."""

    misses = 2
    seen = 0

    def do_POST(self) -> None:
        type(self).seen += 1
        if type(self).seen <= self.misses:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_POST()


def test_a_bare_404_right_after_the_rollout_is_retried_and_a_lasting_one_named():
    """Seen on kind: a server scaled up from zero, answered once by a bare 404 a second after
    its rollout; the deploy rolled back a good model. A 404 is retried within the same budget;
    one that lasts still fails, naming it."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NotYet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        _NotYet.answer = (200, json.dumps({"predictions": (EXPECTED * 5).tolist()}))
        assert smoke_test(url, EXAMPLE) == 3
        assert _NotYet.seen == 3
        _NotYet.seen, _NotYet.misses = 0, 100
        with pytest.raises(serving.ServingError, match="answered 404"):
            smoke_test(url, EXAMPLE, attempts=2)
    finally:
        httpd.shutdown()
