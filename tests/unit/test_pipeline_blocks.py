from __future__ import annotations

import json

import pytest

from trainyard.pipeline import factory, gate, grid, notifications, selection
from trainyard.pipeline.platform import PlatformConfigError, load, parse
from trainyard.pipeline.pod_tasks import PodTasks, stage_arguments

pytestmark = pytest.mark.unit


def test_grid_is_the_cartesian_product_in_stable_order():
    trials = grid.expand({"optimizer": ["adam", "sgd"], "lr": [0.1, 0.01]}, max_trials=8)
    assert trials == [
        {"optimizer": "adam", "lr": 0.1},
        {"optimizer": "adam", "lr": 0.01},
        {"optimizer": "sgd", "lr": 0.1},
        {"optimizer": "sgd", "lr": 0.01},
    ]
    args = grid.option_flags({"optimizer": "sgd", "lr": 0.1, "hidden": [64, 32], "min_df": 2})
    assert args == ["--optimizer", "sgd", "--lr", "0.1", "--hidden", "64,32", "--min-df", "2"]


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({}, "search_space is empty"),
        ({"learning_rate": [0.1]}, "unknown keys ['learning_rate']; known: ['batch_size', 'lr']"),
        ({"lr": 0.1}, "search_space.lr: expected a non-empty list"),
        ({"lr": []}, "search_space.lr: expected a non-empty list"),
        ({"lr": [1, 2, 3], "batch_size": [1, 2, 3]}, "9 trials, more than max_trials=8"),
    ],
)
def test_bad_search_spaces_are_named(space, message):
    with pytest.raises(grid.GridError, match=message.replace("[", r"\[").replace("]", r"\]")):
        grid.expand(space, max_trials=8, options=["lr", "batch_size"])


def test_without_a_list_of_options_any_snake_case_name_is_one():
    assert grid.expand({"min_df": [1, 2]}, max_trials=2) == [{"min_df": 1}, {"min_df": 2}]
    with pytest.raises(grid.GridError, match=r"unknown keys \['Min-DF'\]; names are lower_snake"):
        grid.expand({"Min-DF": [1]}, max_trials=2)


def _trial(run_id, val):
    return {
        "run_id": run_id,
        "model_uri": f"models:/m-{run_id}",
        "val_accuracy": val,
        "test_accuracy": val,
        "params": {"lr": 0.1},
    }


def test_select_best_skips_failed_trials():
    best = selection.select_best([_trial("a", 0.91), None, _trial("b", 0.97), {}])
    assert best["run_id"] == "b"
    assert best["trials_succeeded"] == 2


def test_select_best_ranks_by_the_contracts_metrics_in_either_direction():
    def trial(run_id, rmse):
        return {
            "run_id": run_id,
            "model_uri": f"m-{run_id}",
            "metrics": {"rmse": rmse},
            "params": {},
        }

    trials = [trial("a", 55.0), None, trial("b", 51.5), trial("c", 60.0)]
    best = selection.select_best(trials, metric="rmse", direction="min")
    assert (best["run_id"], best["metric"], best["value"]) == ("b", "rmse", 51.5)
    assert best["metrics"] == {"rmse": 51.5} and "val_accuracy" not in best
    assert selection.select_best(trials, metric="rmse", direction="max")["run_id"] == "c"


def test_select_best_keeps_the_digits_accuracies_for_the_summary():
    best = selection.select_best([_trial("a", 0.91), _trial("b", 0.97)])
    assert (best["val_accuracy"], best["test_accuracy"], best["value"]) == (0.97, 0.97, 0.97)


def test_a_trial_that_succeeded_without_the_metric_fails_the_selection():
    reported = {"run_id": "r9", "model_uri": "m", "metrics": {"mae": 3.0}, "params": {}}
    with pytest.raises(
        selection.TrialContractError,
        match="trial run 'r9' reported no number "
        r"for metric 'rmse' \(got None; it reported mae\)",
    ):
        selection.select_best([None, reported], metric="rmse", direction="min")


def test_select_best_fails_clearly_without_a_success():
    with pytest.raises(selection.NoSuccessfulTrialError, match="no training trial succeeded"):
        selection.select_best([None, None])


def test_branch_fails_closed():
    assert gate.branch_for(True) == "deploy"
    for value in (False, None, "true", 1):
        assert gate.branch_for(value) == "skip_deployment"


def test_platform_config_defaults_and_file(tmp_path, monkeypatch):
    monkeypatch.delenv("TRAINYARD_PLATFORM_CONFIG", raising=False)
    assert load().runtime == "kubernetes"
    path = tmp_path / "platform.json"
    path.write_text(json.dumps({"runtime": "standalone", "gpu": {"enabled": True, "count": 4}}))
    monkeypatch.setenv("TRAINYARD_PLATFORM_CONFIG", str(path))
    config = load()
    assert (
        config.standalone and config.gpu.count == 4 and config.gpu.resource_name == "nvidia.com/gpu"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"runtime": "docker"}, "runtime: 'docker' is not one of"),
        ({"gpu": {"count": "2"}}, "gpu.count: expected int, got '2'"),
        ({"gpu": {"enabled": "yes"}}, "gpu.enabled: expected bool"),
        ({"trainer": {"env": ["A=1"]}}, "trainer.env: expected dict"),
        ({"max_parallel_trials": 0}, "max_parallel_trials: must be at least 1"),
        ({"trainer": []}, "trainer: expected an object"),
        ({"trainer": {"image_pull_secrets": "regcred"}}, "trainer.image_pull_secrets: expected"),
        ({"trainer": {"startup_timeout_seconds": 0}}, "startup_timeout_seconds: must be at"),
        ({"trainer": {"schedule_timeout_seconds": "900"}}, "schedule_timeout_seconds: expected"),
    ],
)
def test_bad_platform_config_names_the_key(data, message):
    with pytest.raises(PlatformConfigError) as error:
        parse(data)
    assert message in str(error.value)


def test_keys_a_newer_platform_config_adds_are_ignored_with_a_warning(caplog):
    """A newer chart's platform.json, read by this code during a rolling upgrade or after a
    rollback: the DAGs must still parse."""
    with caplog.at_level("WARNING", logger="trainyard.pipeline.platform"):
        config = parse({"max_parallel_trials": 2, "queues": {}, "gpu": {"count": 2, "mig": "x"}})
    assert config.max_parallel_trials == 2 and config.gpu.count == 2
    assert "ignoring keys this trainyard does not know: queues" in caplog.text
    assert "platform config gpu: ignoring keys this trainyard does not know: mig" in caplog.text


def test_trainer_pods_get_pull_secrets_and_patient_timeouts():
    from trainyard.pipeline.kubernetes import pod_kwargs  # noqa: PLC0415

    config = parse(
        {
            "trainer": {
                "image_pull_secrets": ["regcred", "gpu-registry"],
                "schedule_timeout_seconds": 1200,
                "startup_timeout_seconds": 600,
            }
        }
    )
    kwargs = pod_kwargs(config, gpu=True)
    assert [s.name for s in kwargs["image_pull_secrets"]] == ["regcred", "gpu-registry"]
    assert kwargs["schedule_timeout_seconds"] == 1200
    assert kwargs["startup_timeout_seconds"] == 600
    # Defaults fit a cold GPU node (the provider's own are 120 s), and no Secrets by default.
    defaults = pod_kwargs(parse({}), gpu=False)
    assert defaults["schedule_timeout_seconds"] == defaults["startup_timeout_seconds"] == 900
    assert defaults["image_pull_secrets"] == []


def test_standalone_pod_tasks_ignore_the_pod_settings():
    config = parse(
        {
            "runtime": "standalone",
            "trainer": {"image_pull_secrets": ["regcred"], "startup_timeout_seconds": 5},
        }
    )
    kwargs = PodTasks(config).kwargs("train", gpu=True, cmds=["python", "-m", "digits"])
    assert not {"image_pull_secrets", "startup_timeout_seconds", "schedule_timeout_seconds"} & set(
        kwargs
    )


def test_missing_platform_file_is_named(tmp_path):
    with pytest.raises(PlatformConfigError, match="file not found"):
        load(tmp_path / "nope.json")


def test_summary_reports_before_and_after():
    evaluation = {
        "candidate_accuracy": 0.97,
        "champion_version": "3",
        "champion_accuracy": 0.95,
        "reason": "beats",
    }
    deployed = notifications.summarize("r1", _trial("b", 0.97), evaluation, {"version": "4"})
    assert deployed["champion_version_before"] == "3"
    assert deployed["champion_version_after"] == "4"
    assert deployed["deployed"] is True
    skipped = notifications.summarize("r2", _trial("b", 0.97), evaluation, None)
    assert skipped["champion_version_after"] == "3" and skipped["deployed"] is False
    assert "not deployed (beats)" in notifications.message(skipped)
    assert skipped["candidate_accuracy"] == 0.97 and skipped["label"] == "accuracy"


def test_summary_speaks_the_gates_metric():
    best = {"run_id": "b", "params": {"alpha": 0.1}, "metric": "val_rmse", "value": 52.1}
    evaluation = {
        "metric": "test_rmse",
        "label": "rmse",
        "direction": "min",
        "candidate_value": 53.2,
        "champion_value": 55.0,
        "champion_version": "2",
        "reason": "candidate rmse 53.2000 beats champion v2 55.0000 by +1.8000",
    }
    summary = notifications.summarize("r3", best, evaluation, {"version": "3"})
    assert (summary["candidate_value"], summary["champion_value_before"]) == (53.2, 55.0)
    assert summary["candidate_accuracy"] is None and summary["best_val_accuracy"] is None
    text = notifications.message(summary)
    assert "val_rmse 52.1, candidate rmse 53.2 (lower is better)" in text
    assert "deployed as champion v3" in text


def test_options_become_trainer_flags_in_order():
    assert stage_arguments("evaluate", {"model_uri": "m", "min_accuracy": "{{ params.x }}"}) == [
        "evaluate",
        "--model-uri",
        "m",
        "--min-accuracy",
        "{{ params.x }}",
    ]


def test_each_trial_gets_the_train_stages_arguments_with_its_own_values():
    trials = grid.expand({"lr": [0.1, 0.2]}, max_trials=4)
    stage = ["train", "--run-name", "${trial.label}", "--checkpoint", "${trial.checkpoint}"]
    lists = factory.trial_arguments(stage, trials, lambda i: f"s3://b/ckpt/{i:03d}.pt", 2)
    assert lists[1] == [
        "train", "--run-name", "lr=0.2", "--checkpoint", "s3://b/ckpt/001.pt", "--lr", "0.2",
    ]  # fmt: skip
