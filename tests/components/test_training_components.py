"""The training pipeline as KFP components: compiled by kfp, run by ratchet's runner.

The run test prepares a small dataset, records a policy decision as the policy
would, and runs the whole pipeline on a small budget (two trials, two epochs),
then the same pipeline again for REUSE and STOP; pre-training with a teacher and
a warm-started fine-tune are then called as plain functions (`python_func`) on
that store. No `from __future__ import annotations` here, as in the components.
"""

import json
import shutil
import time
from pathlib import Path

import pytest
import torch
import yaml
from training_data import frame

from ratchet import datasets, pipelines
from ratchet.artifacts import ArtifactStore
from ratchet.components import training as components
from ratchet.config import Config, load_config
from ratchet.data.engines.local import prepare_dataset
from ratchet.errors import FailedPrecondition, InvalidArgument
from ratchet.evaluation import find_decisions, find_evaluations
from ratchet.formalize.policy import POLICY_DECISION, Action, Decision, record_decision
from ratchet.formalize.policy import TYPES as POLICY_TYPES
from ratchet.metadata import Artifact, MetadataStore
from ratchet.pipelines import TaskState
from ratchet.registry import Registry
from ratchet.training.hub import Hub, WeightsRef
from ratchet.tuning.results import TYPES as TUNING_TYPES
from ratchet.tuning.results import find_hyperparameters
from ratchet.tuning.study import Study

# A small budget: two trials of two epochs on 800 rows.
SMALL = {
    "fixed": json.dumps({"epochs": 2, "batch_size": 128, "patience": 1, "threads": 1}),
    "tuning": json.dumps({"space": components.SPACE, "max_trials": 2, "parallel_trials": 2}),
    "warmup": json.dumps({"steps": 10}),
    "slices": json.dumps(["color"]),
}


@pytest.fixture
def config(home: Path) -> Config:
    return load_config()


@pytest.fixture
def dataset(config: Config) -> Artifact:
    """A registered dataset version, as the data pipeline leaves one."""
    staging = config.home / "datasets" / "churn" / ".staging"
    prepared = prepare_dataset(frame(800), staging, label="churned", shard_rows=400)
    with MetadataStore.from_config(config) as store:
        found, _, _ = datasets.publish_version(
            store, ArtifactStore.from_config(config), prepared, name="churn", source="frame",
            started=time.time(),
        )  # fmt: skip
    return found


def decide(config: Config, dataset: Artifact, action: str) -> None:
    """The policy's decision for `dataset`, recorded as a formalization pass records it."""
    decision = Decision(Action(action), (f"the test chose {action}",), {"hyperparameters": None})
    with MetadataStore.from_config(config) as store:
        artifacts = ArtifactStore.from_config(config)
        record_decision(store, artifacts, decision, dataset=dataset, hyperparameters=None)


def weights(config: Config, handle: str) -> WeightsRef:
    with MetadataStore.from_config(config) as store:
        hub = Hub(store, ArtifactStore.from_config(config))
        state = {"w": torch.full((2,), float(len(handle)))}
        return hub.publish(
            handle, state, architecture={"architecture": "x"}, architecture_sha256="a"
        )


def states(run: pipelines.PipelineRun) -> dict[str, TaskState]:
    """Each task's state by its name, whatever condition it sits under."""
    return {path.rsplit("/", 1)[-1]: state for path, state in run.tasks.items()}


def test_the_training_pipeline_compiles_to_kfp_ir(tmp_path: Path) -> None:
    output = tmp_path / "training.yaml"
    spec = pipelines.compile_pipeline(components.training_pipeline, output)
    ir = yaml.safe_load(output.read_text())
    assert spec.name == ir["pipelineInfo"]["name"] == "ratchet-training"
    tasks = dict(ir["root"]["dag"]["tasks"])
    for component in ir["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    steps = {name for name in tasks if not name.startswith("condition")}
    assert steps == {
        "read-policy", "warmup-step", "baseline-step", "pretrain-step", "keep-value",
        "tune-step", "keep-value-2", "train-step", "evaluate-step", "gate-step",
    }  # fmt: skip
    conditions = " ".join(t.get("triggerPolicy", {}).get("condition", "") for t in tasks.values())
    assert "!= 'STOP'" in conditions and "!= 'REUSE'" in conditions
    assert "read-policy-prepare_weights'] == true" in conditions
    # What reads the store or moves an alias is never served from the cache.
    uncached = {n for n, t in tasks.items() if t.get("cachingOptions") == {}}
    assert uncached == {"read-policy", "gate-step"}
    assert set(ir["root"]["inputDefinitions"]["parameters"]) >= {"dataset", "model_name", "hidden"}


def test_read_policy_needs_a_known_decision_for_the_dataset(
    config: Config, dataset: Artifact
) -> None:
    read = components.read_policy.python_func
    with pytest.raises(FailedPrecondition, match="no policy decision for dataset version"):
        read(model_name="churn", dataset=dataset.uri, init_weights="")
    with MetadataStore.from_config(config) as store:
        for record_type in POLICY_TYPES:
            store.put_type(record_type)
        other = {"action": "REUSE", "dataset_version": "f" * 64}  # another version's
        store.put_artifact(Artifact(POLICY_DECISION, properties=other))
        with pytest.raises(FailedPrecondition, match=dataset.sha256[:12]):
            read(model_name="churn", dataset=dataset.uri, init_weights="")
        unknown = {"action": "MAYBE", "dataset_version": dataset.sha256}
        store.put_artifact(Artifact(POLICY_DECISION, properties=unknown))
    with pytest.raises(InvalidArgument, match="MAYBE"):
        read(model_name="churn", dataset=dataset.uri, init_weights="")


def test_read_policy_chooses_where_training_starts(config: Config, dataset: Artifact) -> None:
    read = components.read_policy.python_func
    decide(config, dataset, "REUSE")
    fresh = read(model_name="churn", dataset=dataset.uri, init_weights="")
    assert (fresh.action, fresh.dataset_version) == ("REUSE", dataset.sha256)
    assert (fresh.hyperparameters, fresh.study, fresh.start_weights) == ("{}", "", "")
    assert fresh.prepare_weights  # nothing to start from: warm up first
    domain = weights(config, "domain")
    given = read(model_name="churn", dataset=dataset.uri, init_weights="domain")
    assert (given.start_weights, given.prepare_weights) == (domain.sha256, False)
    tuned_from = weights(config, "pretrained")
    with MetadataStore.from_config(config) as store:
        for record_type in TUNING_TYPES:
            store.put_type(record_type)
        store.put_artifact(
            Artifact(
                "Hyperparameters", uri="study://s1/0",
                properties={"study": "s1", "model": "churn"},
                custom_properties={
                    "values": {"learning_rate": 0.01}, "start_weights": tuned_from.sha256
                },
            )
        )  # fmt: skip
    reused = read(model_name="churn", dataset=dataset.uri, init_weights="domain")
    assert reused.start_weights == tuned_from.sha256  # the weights they were tuned from
    # Another model's hyperparameters in the same store are not this model's.
    assert read(model_name="other", dataset=dataset.uri, init_weights="").hyperparameters == "{}"
    assert (json.loads(reused.hyperparameters), reused.study) == ({"learning_rate": 0.01}, "s1")
    decide(config, dataset, "FINE_TUNE")
    assert (
        read(model_name="churn", dataset=dataset.uri, init_weights="domain").start_weights
        == domain.sha256
    )
    decide(config, dataset, "REFORMALIZE")
    assert read(model_name="churn", dataset=dataset.uri, init_weights="domain").prepare_weights
    # An unregistered folder's version is its content hash: a copy has the original's.
    copy = shutil.copytree(dataset.uri, Path(dataset.uri).with_name("copy"))
    decide(config, dataset, "RETUNE")
    assert (
        read(model_name="churn", dataset=str(copy), init_weights="").dataset_version
        == dataset.sha256
    )


def test_the_training_pipeline_runs_under_ratchet(config: Config, dataset: Artifact) -> None:
    arguments = {"dataset": dataset.uri, "model_name": "churn", **SMALL}
    decide(config, dataset, "REFORMALIZE")
    first = pipelines.run(components.training_pipeline, arguments, config=config)
    assert first.state == "SUCCEEDED", first.errors
    ran = states(first)
    # The Else branches (keep the weights, keep the hyperparameters) did not run.
    assert ran["condition-4"] == ran["condition-7"] == TaskState.SKIPPED
    assert "keep-value" not in ran and "keep-value-2" not in ran
    assert {
        ran[s] for s in ("warmup-step", "baseline-step", "pretrain-step", "tune-step", "gate-step")
    } == {TaskState.COMPLETE}
    artifacts = ArtifactStore.from_config(config)
    with MetadataStore.from_config(config) as store:
        registry = Registry(store, artifacts)
        champion = registry.get("churn:champion")
        assert champion.version == 1 and champion.labels["decision"] == "REFORMALIZE"
        [decision] = find_decisions(store, "churn")
        assert decision.properties["promote"] is True
        assert find_evaluations(store, "churn", 1)
        [tuned] = find_hyperparameters(store)
        [warm] = [
            w
            for w in store.find_artifacts(type="ModelWeights")
            if str(w.properties["handle"]).startswith("warmup-")
        ]
        # Trials started from the warmed weights; no domain weights were given.
        assert tuned.custom_properties["start_weights"] == warm.sha256
        assert "init_weights" not in tuned.custom_properties
        lineage = store.lineage(artifact_id=champion.artifact_id, direction="upstream", depth=10)
        assert {"Dataset", "ModelWeights", "Hyperparameters", "Model"} <= {
            a.type for a in lineage.artifacts
        }
        assert {"Warmup", "Tune", "TrainingJob", "RegisterModel"} <= {
            e.type for e in lineage.executions
        }

    decide(config, dataset, "REUSE")  # the same hyperparameters and weights: the same model
    again = pipelines.run(components.training_pipeline, arguments, config=config)
    assert again.state == "SUCCEEDED", again.errors
    ran = states(again)
    assert ran["train-step"] == ran["evaluate-step"] == TaskState.CACHED
    assert "tune-step" not in ran and ran["condition-6"] == TaskState.SKIPPED
    assert ran["gate-step"] == TaskState.COMPLETE
    decide(config, dataset, "STOP")
    stopped = pipelines.run(components.training_pipeline, arguments, config=config)
    assert stopped.state == "SUCCEEDED"
    assert states(stopped) == {"read-policy": TaskState.COMPLETE, "condition-1": TaskState.SKIPPED}
    with MetadataStore.from_config(config) as store:
        assert [str(v) for v in Registry(store, artifacts).versions("churn")] == ["churn@1"]
        assert len(find_decisions(store, "churn")) == 1  # already the champion: no new verdict

    # Pre-training with the champion as teacher, then a fine-tune warm-started from the study.
    pretrained = components.pretrain_step.python_func(
        dataset=dataset.uri, dataset_version=dataset.sha256, start=warm.sha256,
        teacher="churn:champion", pretraining=json.dumps({"rows": 300, "epochs": 1}), seed=0,
    )  # fmt: skip
    assert pretrained not in ("", warm.sha256)
    domain = weights(config, "domain")  # new domain-specific weights: the policy's FINE_TUNE
    fine = components.tune_step.python_func(
        model_name="churn", action="FINE_TUNE", dataset=dataset.uri,
        dataset_version=dataset.sha256, hidden="[32]",
        fixed=SMALL["fixed"], tuning=json.dumps({"max_trials": 1}), init_weights=domain.sha256,
        start=pretrained,
        study=str(tuned.properties["study"]), seed=0,
    )  # fmt: skip
    with MetadataStore.from_config(config) as store:
        newest = find_hyperparameters(store)[0]
        assert json.loads(fine) == newest.custom_properties["values"]
        assert newest.custom_properties["start_weights"] == pretrained
        assert newest.custom_properties["init_weights"] == domain.sha256
        study = Study.load(str(newest.properties["study"]), url=store.url)
        assert study.optuna.user_attrs["warm_started_from"] == tuned.properties["study"]


def test_pretraining_without_a_teacher_passes_the_weights_on() -> None:
    start = "ab" * 32
    passed = components.pretrain_step.python_func(
        dataset="unused", dataset_version="v", start=start, teacher="", pretraining="{}", seed=0
    )
    assert passed == start
