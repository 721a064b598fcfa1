"""The kind fixture's own machinery, where it can run without a cluster: the port-forward relay,
version and failure parsing, the previous-release lookup, taint matching, the pod recorder."""

from __future__ import annotations

import http.server
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from . import kindconfig, prereqs, previous_chart
from .artifacts import dump
from .kube import Kube, PodRecorder
from .portforward import KubectlPortForward, Relay

pytestmark = pytest.mark.unit


# ---- the relay ------------------------------------------------------------------------------


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[int]:
    """A real HTTP server standing in for the Service behind the forward."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _closes_at_once() -> tuple[socket.socket, int]:
    """What a kubectl port-forward whose pod is gone does: accept, then close without a byte."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener, listener.getsockname()[1]


class ScriptedBackend:
    """Stands in for KubectlPortForward (kubectl needs a cluster): hands out the ports in
    `ports` one per (re)start; None means "no pod yet" (port() keeps failing for a while)."""

    def __init__(self, ports: list[int | None]) -> None:
        self.ports, self.resets = ports, 0

    def port(self, deadline: float) -> int:
        while (port := self.ports[0]) is None:
            if time.monotonic() >= deadline:
                raise TimeoutError("no pod")
            self.ports.pop(0)
            time.sleep(0.2)
        return port

    def reset(self) -> None:
        self.resets += 1
        if len(self.ports) > 1:
            self.ports.pop(0)

    def close(self) -> None:
        pass


def test_relay_passes_requests_through(http_server: int) -> None:
    relay = Relay(ScriptedBackend([http_server]))
    try:
        for i in range(3):
            reply = requests.post(relay.url, data=f"hello {i}", timeout=10)
            assert reply.text == f"hello {i}"
    finally:
        relay.close()


def test_relay_replays_a_request_the_broken_forward_swallowed(http_server: int) -> None:
    listener, dead = _closes_at_once()
    backend = ScriptedBackend([dead, http_server])
    relay = Relay(backend)
    try:
        reply = requests.post(relay.url, data="after the pod died", timeout=10)
        assert reply.text == "after the pod died"
        assert backend.resets == 1
    finally:
        relay.close()
        listener.close()


def test_relay_waits_for_a_pod_to_appear(http_server: int) -> None:
    backend = ScriptedBackend([None, None, http_server])
    relay = Relay(backend, patience_s=10)
    try:
        assert requests.post(relay.url, data="late", timeout=10).text == "late"
    finally:
        relay.close()


def test_relay_gives_up_after_its_patience() -> None:
    relay = Relay(ScriptedBackend([None] * 1000), patience_s=0.5)
    try:
        with pytest.raises(requests.ConnectionError):
            requests.post(relay.url, data="nobody", timeout=10)
    finally:
        relay.close()


# A stand-in for `kubectl port-forward` (there is no cluster here): it prints what kubectl
# prints, forwards ONE connection to $TARGET_PORT and exits, as kubectl does when its pod dies.
FAKE_PORT_FORWARD = """#!{python}
import os, socket, sys, threading
server = socket.create_server(("127.0.0.1", 0))
print(f"Forwarding from 127.0.0.1:{{server.getsockname()[1]}} -> 8080", flush=True)
client, _ = server.accept()
upstream = socket.create_connection(("127.0.0.1", int(os.environ["TARGET_PORT"])))
def pipe(a, b):
    while data := a.recv(65536):
        b.sendall(data)
    b.shutdown(socket.SHUT_WR)
threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
pipe(client, upstream)
threading.Event().wait(0.5)
sys.exit(0)
"""


def test_kubectl_port_forward_is_restarted_when_it_exits(
    http_server: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubectl = _script(tmp_path / "kubectl", "")
    kubectl.write_text(FAKE_PORT_FORWARD.format(python=sys.executable))
    monkeypatch.setenv("TARGET_PORT", str(http_server))
    backend = KubectlPortForward(kubectl, tmp_path / "kubeconfig", "ns", "svc/web", 8080)
    relay = Relay(backend, patience_s=20)
    try:
        for i in range(3):
            with requests.Session() as session:  # a new connection each time
                reply = session.post(relay.url, data=f"call {i}", timeout=20)
            assert reply.text == f"call {i}"
        assert backend.starts >= 3
    finally:
        relay.close()


def test_kubectl_port_forward_reports_why_it_cannot_start(tmp_path: Path) -> None:
    kubectl = _script(
        tmp_path / "kubectl", 'echo "error: no running pod for service web" >&2\nexit 1\n'
    )
    backend = KubectlPortForward(kubectl, tmp_path / "kubeconfig", "ns", "svc/web", 8080)
    with pytest.raises(TimeoutError, match="no running pod for service web"):
        backend.port(time.monotonic() + 1)


# ---- prerequisites --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("kind v0.27.0 go1.23.6 linux/amd64", (0, 27, 0)),
        ("kind v0.30.1 go1.24.2 darwin/arm64", (0, 30, 1)),
        ("kind v0.20.0-alpha+abc go1.20 linux/amd64", (0, 20, 0)),
        ("nonsense", None),
    ],
)
def test_kind_version_parsing(text: str, version: tuple[int, int, int] | None) -> None:
    assert prereqs.parse_kind_version(text) == version


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_old_or_missing_kind_is_a_precise_reason(tmp_path: Path) -> None:
    # Stand-ins for kind binaries (no kind can be installed here): only `kind version` is used.
    old = _script(tmp_path / "kind-old", 'echo "kind v0.26.0 go1.23 linux/amd64"\n')
    new = _script(tmp_path / "kind-new", 'echo "kind v0.27.0 go1.23 linux/amd64"\n')
    with pytest.raises(
        prereqs.UnavailableError, match=r"kind 0\.26\.0 .* too old: need kind >= 0\.27"
    ):
        prereqs.find_kind(str(old))
    assert prereqs.find_kind(str(new)) == new.resolve()
    with pytest.raises(prereqs.UnavailableError, match=r"kind not found: .* is not an executable"):
        prereqs.find_kind(str(tmp_path / "absent"))


def test_no_kind_on_path_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(prereqs.UnavailableError) as info:
        prereqs.find_kind(None)
    assert str(info.value) == "kind not found: pass --kind-bin or put kind >= 0.27.0 on PATH"


def test_registry_failures_of_image_builds_are_recognised() -> None:
    output = (
        "#3 [internal] load metadata for docker.io/apache/airflow:3.3.2-python3.11\n"
        "ERROR: failed to solve: apache/airflow:3.3.2-python3.11: failed to resolve source "
        "metadata for docker.io/apache/airflow:3.3.2-python3.11: dial tcp: lookup "
        "registry-1.docker.io: no such host\n"
    )
    assert "failed to resolve source metadata" in (
        prereqs.build_failure_is_registry_access(output) or ""
    )
    assert prereqs.build_failure_is_registry_access("ERROR: pip install failed: exit 1") is None


# ---- kind config semantics ------------------------------------------------------------------

TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("toleration", "tolerated"),
    [
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "present"}, True),
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "other"}, False),
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, True),
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"operator": "Exists"}, True),
        ({"key": "other", "operator": "Exists"}, False),
    ],
)
def test_toleration_matching(toleration: dict[str, str], tolerated: bool) -> None:
    assert kindconfig.tolerates([toleration], TAINT) is tolerated


def test_kind_config_reading(tmp_path: Path) -> None:
    config = tmp_path / "kind.yaml"
    config.write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n"
        "  - role: control-plane\n"
        "  - role: worker\n"
        "    labels: {a: b}\n"
        "    kubeadmConfigPatches:\n"
        "      - |\n"
        "        kind: JoinConfiguration\n"
        "        nodeRegistration:\n"
        "          kubeletExtraArgs:\n"
        "            - {name: node-labels, value: 'x=1,y=2'}\n"
    )
    control_plane, worker = kindconfig.load(config)
    # No taints key: kubeadm's control-plane taint, kept by kind in clusters with workers.
    assert control_plane.taints == [kindconfig.CONTROL_PLANE_TAINT]
    assert worker.taints == []
    assert worker.labels == {"a": "b", "x": "1", "y": "2"}


# ---- previous release -----------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
    }
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()


def _commit_chart(repo: Path, version: str, note: str) -> str:
    chart = repo / previous_chart.CHART_PATH
    chart.mkdir(parents=True, exist_ok=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: trainyard\nversion: {version}\n")
    (chart / "values.yaml").write_text(f"note: {note}\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", note)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    return tmp_path


def test_previous_release_is_the_last_commit_before_the_bump(repo: Path, tmp_path: Path) -> None:
    _commit_chart(repo, "0.1.0", "first")
    last = _commit_chart(repo, "0.1.0", "fix")
    _commit_chart(repo, "0.2.0", "bump")
    found = previous_chart.find(repo, "0.2.0")
    assert (found.version, found.rev) == ("0.1.0", last)
    assert "no release tag" in found.source
    chart = previous_chart.export(repo, found, tmp_path / "out")
    assert (chart / "values.yaml").read_text() == "note: fix\n"


def test_previous_release_is_head_while_the_bump_is_uncommitted(repo: Path) -> None:
    _commit_chart(repo, "0.1.0", "first")
    head = _commit_chart(repo, "0.1.0", "more")
    assert previous_chart.find(repo, "0.2.0").rev == head


def test_previous_release_prefers_its_tag(repo: Path) -> None:
    first = _commit_chart(repo, "0.1.0", "first")
    _git(repo, "tag", "trainyard-0.1.0")
    _commit_chart(repo, "0.1.0", "after the release")
    _commit_chart(repo, "0.2.0", "bump")
    found = previous_chart.find(repo, "0.2.0")
    assert (found.rev, found.source) == (first, "tag trainyard-0.1.0")


def test_no_previous_release(repo: Path) -> None:
    _commit_chart(repo, "0.1.0", "first")
    with pytest.raises(previous_chart.NoPreviousReleaseError) as info:
        previous_chart.find(repo, "0.1.0")
    assert str(info.value) == (
        "no previous release: charts/trainyard/Chart.yaml has had no version below 0.1.0 "
        "in the git history of HEAD"
    )


# ---- pod recorder ---------------------------------------------------------------------------


def test_pod_recorder_reads_kubectls_watch_stream(tmp_path: Path) -> None:
    """kubectl --watch -o json prints one indented JSON document per change. A stand-in kubectl
    (there is no cluster to watch) prints a recorded stream: a pending pod, then it scheduled,
    then its deletion without a node name."""

    def pod(node: str, phase: str) -> str:
        spec = {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}}]}
        if node:
            spec["nodeName"] = node  # type: ignore[assignment]
        return json.dumps(
            {
                "kind": "Pod",
                "metadata": {"uid": "u1", "name": "train-1", "labels": {"task_id": "train"}},
                "spec": spec,
                "status": {"phase": phase},
            },
            indent=4,
        )

    stream = tmp_path / "stream.json"
    documents = [pod("", "Pending"), pod("worker", "Running"), pod("", "Succeeded")]
    stream.write_text("".join(doc + "\n" for doc in documents))
    kubectl = _script(tmp_path / "kubectl", f"cat {stream}\nexec sleep 30\n")
    recorder = PodRecorder(Kube(kubectl, tmp_path / "kubeconfig"), "ns", "a=b")
    try:
        seen = recorder.wait_for(
            lambda p: p.phase == "Succeeded", timeout_s=10, stop=threading.Event()
        )
    finally:
        recorder.close()
    assert seen is not None
    assert (seen.node, seen.task, seen.limits) == ("worker", "train", {"nvidia.com/gpu": "1"})


# ---- failure artifacts ----------------------------------------------------------------------

FAKE_KUBECTL = """#!{python}
import json, sys
args = sys.argv[1:]
if args[:2] == ["get", "pods"] and "json" in args:
    status = {{"containerStatuses": [{{"name": "base", "restartCount": 2}}]}}
    pod = {{"metadata": {{"name": "web-1"}}, "spec": {{"initContainers": [{{"name": "init"}}],
           "containers": [{{"name": "base"}}]}}, "status": status}}
    print(json.dumps({{"items": [pod]}}))
elif args[:2] == ["describe", "nodes"]:
    sys.exit("the API server is gone")
else:
    print("kubectl", *args)
"""


def test_failure_dump_keeps_whatever_it_can_read(tmp_path: Path) -> None:
    """A stand-in kubectl (no cluster here) answers like one whose API server half works."""
    kubectl = _script(tmp_path / "kubectl", "")
    kubectl.write_text(FAKE_KUBECTL.format(python=sys.executable))
    dest = dump(
        Kube(kubectl, tmp_path / "kubeconfig"),
        ["trainyard-cpu"],
        tmp_path / "artifacts",
        helm=lambda args: "helm " + " ".join(args),
    )
    assert "could not be collected" in (dest / "nodes.txt").read_text()
    ns = dest / "trainyard-cpu"
    assert (ns / "events.txt").read_text().startswith("kubectl get events -n trainyard-cpu")
    assert {p.name for p in (ns / "logs").iterdir()} == {
        "web-1.init.log",
        "web-1.base.log",
        "web-1.base.previous.log",
    }
    assert "--previous" in (ns / "logs" / "web-1.base.previous.log").read_text()
    assert (dest / "helm-values.yaml").read_text() == "helm get values --all"
