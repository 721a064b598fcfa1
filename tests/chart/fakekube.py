"""A minimal, read-only Kubernetes API server, so that `helm ... --dry-run=server` can render
the chart's `lookup`s without a cluster.

It answers discovery (/version, /api, /apis and one resource list per group version, for the
kinds the chart renders) and GETs of the objects it is given; everything else is 404. Helm 3
and Helm 4 both render against it, which is how the tests see what an upgrade renders where
live objects exist (e.g. the model server's replica count).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# (group, kind, plural, namespaced); every group at version v1.
KINDS = [
    ("", "Namespace", "namespaces", False),
    ("", "ServiceAccount", "serviceaccounts", True),
    ("", "Secret", "secrets", True),
    ("", "ConfigMap", "configmaps", True),
    ("", "Service", "services", True),
    ("", "Pod", "pods", True),
    ("", "ResourceQuota", "resourcequotas", True),
    ("", "LimitRange", "limitranges", True),
    ("", "PersistentVolumeClaim", "persistentvolumeclaims", True),
    ("apps", "Deployment", "deployments", True),
    ("apps", "StatefulSet", "statefulsets", True),
    ("apps", "DaemonSet", "daemonsets", True),
    ("batch", "Job", "jobs", True),
    ("networking.k8s.io", "NetworkPolicy", "networkpolicies", True),
    ("networking.k8s.io", "Ingress", "ingresses", True),
    ("rbac.authorization.k8s.io", "Role", "roles", True),
    ("rbac.authorization.k8s.io", "RoleBinding", "rolebindings", True),
]
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def object_path(obj: dict[str, Any]) -> str:
    group, _, version = obj["apiVersion"].rpartition("/")
    (plural,) = [p for g, k, p, _ in KINDS if g == group and k == obj["kind"]]
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    namespace = obj["metadata"].get("namespace")
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{scope}/{plural}/{obj['metadata']['name']}"


def _discovery(path: str) -> dict[str, Any] | None:
    groups = sorted({g for g, *_ in KINDS if g})
    if path == "/version":
        return {"major": "1", "minor": "34", "gitVersion": "v1.34.0", "platform": "linux/amd64"}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"},
                }
                for g in groups
            ],
        }
    for group in ["", *groups]:
        if path == (f"/apis/{group}/v1" if group else "/api/v1"):
            return {
                "kind": "APIResourceList",
                "groupVersion": f"{group}/v1" if group else "v1",
                "resources": [
                    {
                        "name": plural,
                        "singularName": kind.lower(),
                        "namespaced": namespaced,
                        "kind": kind,
                        "verbs": VERBS,
                    }
                    for g, kind, plural, namespaced in KINDS
                    if g == group
                ],
            }
    return None


class FakeKube:
    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = {object_path(o): o for o in objects}
        self.requests: list[tuple[str, str]] = []
        self.kubeconfig = Path("/dev/null")  # set by fake_kube()

    def helm_template(self, helm: Path, args: list[str], check: bool = True) -> str:
        """`helm template <args> --dry-run=server` against this fake (lookup reads its objects);
        the rendered YAML. Fails the test with Helm's error when the render fails; with
        check=False, a failed render's error instead (and "" when it succeeds)."""
        proc = subprocess.run(
            [str(helm), "template", *args, "--dry-run=server", "--disable-openapi-validation"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={
                **os.environ,
                "KUBECONFIG": str(self.kubeconfig),
                "HELM_REPOSITORY_CONFIG": "/dev/null",
            },
        )
        if not check:
            return "" if proc.returncode == 0 else proc.stderr
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                return

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                fake.requests.append(("GET", path))
                found = _discovery(path) or fake.objects.get(path)
                if found is not None:
                    self._send(200, found)
                    return
                self._send(
                    404,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "reason": "NotFound",
                        "code": 404,
                        "message": f"{path} not found",
                    },
                )

            def _refuse(self) -> None:
                fake.requests.append((self.command, self.path.split("?")[0]))
                self._send(405, {"kind": "Status", "code": 405, "message": "read-only fake"})

            do_POST = do_PUT = do_PATCH = do_DELETE = _refuse  # noqa: N815

        return Handler


@contextmanager
def fake_kube(objects: list[dict[str, Any]], tmp: Path, namespace: str) -> Iterator[FakeKube]:
    """Serve `objects` on 127.0.0.1; yields the fake with `.kubeconfig` (a file path) set."""
    fake = FakeKube(objects)
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        kubeconfig = tmp / "kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "fake",
                            "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"},
                        }
                    ],
                    "users": [{"name": "fake", "user": {}}],
                    "contexts": [
                        {
                            "name": "fake",
                            "context": {"cluster": "fake", "user": "fake", "namespace": namespace},
                        }
                    ],
                    "current-context": "fake",
                }
            )
        )
        fake.kubeconfig = kubeconfig
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
