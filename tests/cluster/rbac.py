"""What each ServiceAccount may do, asked of the real authorizer with SubjectAccessReviews."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kubernetes import client


@dataclass(frozen=True)
class Check:
    verb: str
    resource: str  # "pods", "pods/log", "apps/deployments", "apps/deployments/scale"
    name: str = ""  # a named object ("" = any object of the resource)

    def attributes(self, namespace: str) -> dict[str, str]:
        parts = self.resource.split("/")
        group = parts.pop(0) if parts[0] in ("apps", "batch", "rbac.authorization.k8s.io") else ""
        attributes = {"verb": self.verb, "group": group, "resource": parts[0],
                      "subresource": parts[1] if len(parts) > 1 else "", "name": self.name,
                      "namespace": namespace}  # fmt: skip
        return attributes

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}" + (f" {self.name}" if self.name else "")


def checks(serving_deployment: str, credentials_secret: str) -> list[Check]:
    """The verbs that matter here: launching and reading pods (worker pod arguments carry
    Execution API tokens), their logs and exec, Secrets (the trainer credentials by name), and
    scaling the model server."""
    pod_verbs = ("get", "list", "watch", "create", "patch", "update", "delete", "deletecollection")
    out = [Check(v, "pods") for v in pod_verbs]
    out += [Check("get", "pods/log"), Check("create", "pods/exec"), Check("get", "pods/exec")]
    # Other ways into a running pod, or to change one, that no launcher needs.
    out += [Check("create", "pods/attach"), Check("create", "pods/portforward")]
    out += [Check("patch", "pods/ephemeralcontainers"), Check("patch", "pods/status")]
    out += [Check(v, "secrets") for v in ("get", "list", "watch", "create")]
    out += [Check("get", "secrets", credentials_secret)]
    out += [Check(v, "configmaps") for v in ("get", "list", "create")]
    # Another identity: a token of any ServiceAccount in the namespace, or impersonation.
    out += [Check("create", "serviceaccounts/token"), Check("impersonate", "serviceaccounts")]
    out += [Check(v, "apps/deployments") for v in ("get", "list", "patch", "update")]
    out += [Check(v, "apps/deployments", serving_deployment) for v in ("get", "watch", "patch")]
    out += [Check("update", "apps/deployments", serving_deployment)]
    out += [Check("patch", "apps/deployments/scale", serving_deployment)]
    out += [Check("create", "batch/jobs")]
    out += [Check(v, "events") for v in ("get", "list", "watch")]
    rbac = "rbac.authorization.k8s.io"
    out += [Check(v, f"{rbac}/rolebindings") for v in ("create", "patch")]
    # Granting oneself more than one has.
    out += [Check("escalate", f"{rbac}/roles"), Check("bind", f"{rbac}/roles")]
    return out


def allowed(
    api: client.ApiClient, account: str, namespaces: dict[str, str], names: dict[str, str]
) -> set[str]:
    """`account` ("namespace/name"): every "<namespace label>: <check>" the authorizer allows;
    `namespaces` maps a label ("release", "training", "elsewhere") to a namespace, `names` the
    "serving" Deployment and the "credentials" Secret to their names (shown by those labels)."""
    sa_namespace, name = account.split("/")
    user = f"system:serviceaccount:{sa_namespace}:{name}"
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{sa_namespace}",
              "system:authenticated"]  # fmt: skip
    authz = client.AuthorizationV1Api(api)
    asked = [(label, ns, check) for label, ns in namespaces.items()
             for check in checks(names["serving"], names["credentials"])]  # fmt: skip

    def ask(item: tuple[str, str, Check]) -> bool:
        _, namespace, check = item
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": user, "groups": groups,
                           "resourceAttributes": check.attributes(namespace)}}  # fmt: skip
        return bool(authz.create_subject_access_review(review).status.allowed)

    with ThreadPoolExecutor(8) as executor:
        answers = list(executor.map(ask, asked))
    rights = {
        f"{label}: {check}" for (label, _, check), ok in zip(asked, answers, strict=True) if ok
    }
    for label, name in names.items():
        rights = {right.replace(f" {name}", f" {label}") for right in rights}
    return rights
