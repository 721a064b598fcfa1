"""Least privilege: the exact RBAC verb matrix per ServiceAccount per namespace.

Trainer pods run user training code: their ServiceAccount may patch the model server and
nothing else; in particular it may not list pods or read pod logs in the release namespace,
where Airflow's worker pods carry Execution API tokens in their arguments. The Airflow workers'
pod-launcher rights (create, exec, delete pods) exist only in the training namespace, not where
Postgres and the object store run.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from .conftest import CI_VALUES, NAMESPACE, RELEASE, TRAINING_NAMESPACE, Manifest, render_chart

pytestmark = pytest.mark.chart

# (ServiceAccount "namespace/name", namespace granted in) -> {(apiGroup, resource, name): verbs}
Matrix = dict[tuple[str, str], dict[tuple[str, str, str], frozenset[str]]]

ALL_POD_VERBS = frozenset({"create", "delete", "get", "list", "patch", "watch"})
READ_EVENTS = frozenset({"get", "list", "watch"})


def sa(namespace: str, component: str) -> str:
    return f"{namespace}/{RELEASE}-{component}"


def expected_matrix(
    release_ns: str = NAMESPACE,
    training_ns: str = TRAINING_NAMESPACE,
    credentials: str = f"{RELEASE}-trainer",
    team_servers: tuple[str, ...] | list[str] = (),
) -> Matrix:
    matrix: Matrix = defaultdict(dict)
    any_name = "*"
    matrix[(sa(release_ns, "airflow-scheduler"), release_ns)] = {
        ("", "pods", any_name): ALL_POD_VERBS,
    }
    matrix[(sa(release_ns, "airflow-api-server"), release_ns)] = {
        ("", "pods", any_name): frozenset({"get", "list"}),
        ("", "pods/log", any_name): frozenset({"get"}),
    }
    matrix[(sa(release_ns, "airflow-worker"), training_ns)] = {
        ("", "pods", any_name): ALL_POD_VERBS,
        ("", "pods/log", any_name): frozenset({"get"}),
        ("", "pods/exec", any_name): frozenset({"create", "get"}),
        ("", "events", any_name): READ_EVENTS,
    }
    matrix[(sa(release_ns, "airflow-triggerer"), training_ns)] = {
        ("", "pods", any_name): frozenset({"delete", "get", "list", "watch"}),
        ("", "pods/log", any_name): frozenset({"get"}),
        ("", "events", any_name): READ_EVENTS,
    }
    # The deploy step: the platform's model server and each team's (platform.json's
    # model_servers names them for their pipelines' deploy steps), get and patch, nothing else.
    matrix[(sa(training_ns, "trainer"), release_ns)] = {
        ("apps", "deployments", name): frozenset({"get", "patch"})
        for name in [f"{RELEASE}-serving", *team_servers]
    }
    # the `helm test` pod that checks the trainer credentials: that one Secret, read only
    matrix[(sa(release_ns, "test-credentials"), training_ns)] = {
        ("", "secrets", credentials): frozenset({"get"}),
    }
    return dict(matrix)


def rendered_matrix(objects: list[Manifest]) -> Matrix:
    roles = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o["rules"]
        for o in objects
        if o["kind"] == "Role"
    }
    matrix: dict[tuple[str, str], dict[tuple[str, str, str], set[str]]] = defaultdict(
        lambda: defaultdict(set)
    )
    for binding in (o for o in objects if o["kind"] == "RoleBinding"):
        namespace = binding["metadata"]["namespace"]
        assert binding["roleRef"]["kind"] == "Role", binding["metadata"]["name"]
        rules = roles[(namespace, binding["roleRef"]["name"])]
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount", subject
            grants = matrix[(f"{subject['namespace']}/{subject['name']}", namespace)]
            for rule in rules:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        for name in rule.get("resourceNames") or ["*"]:
                            grants[(group, resource, name)] |= set(rule["verbs"])
    return {
        key: {what: frozenset(verbs) for what, verbs in grants.items()}
        for key, grants in matrix.items()
    }


SCENARIOS = {"defaults": [], **{path.stem: [path] for path in CI_VALUES}}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_exact_verb_matrix_per_service_account_and_namespace(helm: str, scenario: str) -> None:
    objects = render_chart(values_files=SCENARIOS[scenario], helm=helm)
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    platform = next(
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{RELEASE}-platform"
    )
    config = json.loads(platform["data"]["platform.json"])
    credentials = config["trainer"]["env_from_secrets"][0]
    team_servers = [
        s["TRAINYARD_SERVING_DEPLOYMENT"] for s in config.get("model_servers", {}).values()
    ]
    assert rendered_matrix(objects) == expected_matrix(
        credentials=credentials, team_servers=team_servers
    )


def test_trainer_cannot_read_pods_or_logs_where_worker_tokens_live(helm: str) -> None:
    matrix = rendered_matrix(render_chart(helm=helm))
    trainer = matrix[(sa(TRAINING_NAMESPACE, "trainer"), NAMESPACE)]
    for (_, resource, _), verbs in trainer.items():
        assert resource not in ("pods", "pods/log", "pods/exec", "secrets", "events"), resource
        assert verbs <= {"get", "patch"}
    # and nothing at all in the training namespace (its own pods are the operator's business)
    assert (sa(TRAINING_NAMESPACE, "trainer"), TRAINING_NAMESPACE) not in matrix


def test_pod_launcher_rights_only_in_the_training_namespace(helm: str) -> None:
    matrix = rendered_matrix(render_chart(helm=helm))
    in_release = {who for who, namespace in matrix if namespace == NAMESPACE}
    assert sa(NAMESPACE, "airflow-worker") not in in_release
    assert sa(NAMESPACE, "airflow-triggerer") not in in_release
    for (who, namespace), grants in matrix.items():
        if namespace == NAMESPACE and who != sa(NAMESPACE, "airflow-scheduler"):
            for (_, resource, _), verbs in grants.items():
                assert not ({"create", "delete", "patch"} & verbs and resource.startswith("pods"))
                assert resource != "pods/exec", who


def test_training_in_the_release_namespace_merges_the_matrix(helm: str) -> None:
    """An empty global.training.namespace: everything in one namespace (documented: no
    isolation), still exactly these grants."""
    objects = render_chart({"global": {"training": {"namespace": ""}}}, helm=helm)
    assert rendered_matrix(objects) == expected_matrix(NAMESPACE, NAMESPACE)


def test_rbac_can_be_left_to_the_cluster_admin() -> None:
    objects = render_chart({"airflow": {"rbac": {"create": False}}})
    matrix = rendered_matrix(objects)
    assert set(matrix) == {
        (sa(TRAINING_NAMESPACE, "trainer"), NAMESPACE),
        (sa(NAMESPACE, "test-credentials"), TRAINING_NAMESPACE),
    }


def test_only_the_credentials_test_reads_a_secret_and_only_one(helm: str) -> None:
    matrix = rendered_matrix(render_chart(helm=helm))
    readers = {
        (who, namespace, name)
        for (who, namespace), grants in matrix.items()
        for (_, resource, name) in grants
        if resource == "secrets"
    }
    assert readers == {
        (sa(NAMESPACE, "test-credentials"), TRAINING_NAMESPACE, f"{RELEASE}-trainer")
    }
    without_tests = rendered_matrix(render_chart({"tests": {"enabled": False}}, helm=helm))
    assert (sa(NAMESPACE, "test-credentials"), TRAINING_NAMESPACE) not in without_tests


def test_the_matrix_sees_an_extra_grant() -> None:
    """The comparison is not vacuous: one more verb anywhere changes the matrix."""
    objects = render_chart()
    role = next(
        o
        for o in objects
        if o["kind"] == "Role" and o["metadata"]["name"].endswith("-serving-deployer")
    )
    role["rules"].append({"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]})
    assert rendered_matrix(objects) != expected_matrix()
