"""The formalization policy on real stores, statistics, schemas, studies and hub weights.

Three generated tables: the reference the hyperparameters are tuned on, a
same-distribution batch and a drifted one (fares shifted, card payments halved).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch

from ratchet import datasets
from ratchet.artifacts import ArtifactStore, hash_path
from ratchet.data.drift import JENSEN_SHANNON, L_INFINITY
from ratchet.data.engines.local import PreparedDataset, prepare_dataset
from ratchet.data.schema import Anomaly, infer_schema, validate
from ratchet.data.stats import DatasetStatistics, compute_statistics
from ratchet.errors import InvalidArgument
from ratchet.formalize.policy import (
    DECIDE,
    NOTHING_TUNED,
    POLICY_DECISION,
    Action,
    Decision,
    PolicyInputs,
    decide,
    record_decision,
)
from ratchet.metadata import Artifact, EventType, MetadataStore
from ratchet.training.hub import Hub, WeightsRef
from ratchet.training.models import MLPSpec
from ratchet.tuning.results import record_best
from ratchet.tuning.space import Metric, Parameter, StudyConfig
from ratchet.tuning.study import Study

LABEL = "tip"
ARCH = MLPSpec(numeric=("fare", "miles"), one_hot=(("payment", 2),), embedding=(), hidden=(32,))
WIDER = MLPSpec(numeric=("fare", "miles"), one_hot=(("payment", 2),), embedding=(), hidden=(64,))


def taxi(seed: int, *, fare_shift: float = 0.0, card: float = 0.6, rows: int = 4000) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "fare": rng.normal(12.0 + fare_shift, 3.0, rows),
            "miles": rng.exponential(2.0, rows),
            "payment": rng.choice(["card", "cash"], rows, p=[card, 1 - card]),
            LABEL: rng.integers(0, 2, rows),
        }
    )


TABLES = {
    "reference": taxi(0),
    "same": taxi(1),
    "drifted": taxi(2, fare_shift=4.0, card=0.2),
}


def statistics(name: str) -> DatasetStatistics:
    return compute_statistics(TABLES[name].to_batches(), label=LABEL, threads=1)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PreparedDataset]:
    root = tmp_path_factory.mktemp("datasets")
    return {
        name: prepare_dataset(table, root / name, label=LABEL, threads=1)
        for name, table in TABLES.items()
    }


@pytest.fixture
def artifacts(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "artifacts"))


Register = Callable[[str], Artifact]


@pytest.fixture
def register(
    store: MetadataStore, artifacts: ArtifactStore, prepared: dict[str, PreparedDataset]
) -> Register:
    """Register a prepared table as a dataset version, the way the data pipeline does."""

    def run(name: str) -> Artifact:
        dataset, _ = datasets.record_dataset(
            store,
            artifacts,
            prepared[name],
            name="taxi",
            source=f"{name}.parquet",
            version=hash_path(prepared[name].folder),
            started=time.time(),
        )
        return dataset

    return run


@pytest.fixture
def weights(store: MetadataStore, artifacts: ArtifactStore) -> list[WeightsRef]:
    """Two versions of domain-specific initial weights in the hub."""
    hub = Hub(store, artifacts)
    return [
        hub.publish(
            "domain",
            {"w": torch.full((3,), float(i))},
            architecture=ARCH.to_dict(),
            architecture_sha256=ARCH.sha256,
        )
        for i in range(2)
    ]


def tune(
    store: MetadataStore,
    dataset: Artifact | None,
    *,
    architecture: str | None = ARCH.sha256,
    init: WeightsRef | None = None,
    name: str = "tune",
    model: str | None = None,
) -> Artifact:
    """A one-trial study recorded as the best hyperparameters, as the tuning step does."""
    config = StudyConfig(
        parameters=(Parameter("learning_rate", "double", low=1e-3, high=1e-1),),
        metrics=(Metric("validation_loss"),),
    )
    study = Study.create(name, config, url=store.url, seed=0)
    [trial] = study.suggest()
    study.complete_trial(trial.number, {"validation_loss": 0.5})
    return record_best(
        study,
        store,
        dataset_version=dataset.sha256 if dataset is not None else None,
        init_weights=init,
        architecture_sha256=architecture,
        model=model,
    )


def inputs(batch: str = "same", **changes: Any) -> PolicyInputs:
    return PolicyInputs(statistics(batch), ARCH.sha256, **changes)


def anomalies(prepared: dict[str, PreparedDataset], batch: str) -> list[Anomaly]:
    """The batch's real anomalies against the schema inferred from the reference."""
    return validate(statistics(batch), infer_schema(prepared["reference"].statistics))


# ---- each action is reached by its situation and by nothing else --------------------


def test_nothing_tuned_yet_reformalizes(
    store: MetadataStore, artifacts: ArtifactStore, register: Register
) -> None:
    register("reference")
    decision = decide(store, artifacts, inputs())
    assert decision.action == Action.REFORMALIZE
    assert decision.reasons == (NOTHING_TUNED,)
    assert decision.evidence["hyperparameters"] is None
    assert decision.drift is None


def test_each_model_decides_against_its_own_hyperparameters(
    store: MetadataStore, artifacts: ArtifactStore, register: Register
) -> None:
    tune(store, register("reference"), model="taxi")
    assert decide(store, artifacts, inputs(model="taxi")).action == Action.REUSE
    other = decide(store, artifacts, inputs(model="churn"))  # one store, two models
    assert (other.action, other.reasons) == (Action.REFORMALIZE, (NOTHING_TUNED,))


def test_same_distribution_reuses(
    store: MetadataStore, artifacts: ArtifactStore, register: Register
) -> None:
    tuned = tune(store, register("reference"))
    decision = decide(store, artifacts, inputs("same"))
    assert decision.action == Action.REUSE, decision.reasons
    assert len(decision.reasons) == 1
    assert decision.evidence["hyperparameters"]["id"] == tuned.id
    assert decision.evidence["drift"]["drifted"] is False
    assert decision.evidence["drift"]["features"] == []
    assert decision.evidence["drift"]["compared"] == 4


def test_drifted_batch_retunes_with_the_drifted_features_in_evidence(
    store: MetadataStore, artifacts: ArtifactStore, register: Register
) -> None:
    reference = register("reference")
    tune(store, reference)
    decision = decide(store, artifacts, inputs("drifted"))
    assert decision.action == Action.RETUNE
    drift = decision.evidence["drift"]
    assert drift["dataset_version"] == reference.sha256
    by_name = {f["name"]: f for f in drift["features"]}
    assert set(by_name) == {"fare", "payment"}  # miles and the label did not move
    assert by_name["fare"]["metric"] == JENSEN_SHANNON
    assert by_name["payment"]["metric"] == L_INFINITY
    assert by_name["payment"]["distance"] == pytest.approx(0.4, abs=0.05)  # 0.6 -> 0.2 card
    assert all(f["distance"] > f["threshold"] == 0.1 for f in by_name.values())
    assert "fare (jensen_shannon" in decision.reasons[0]
    assert "payment (l_infinity" in decision.reasons[0]


@pytest.mark.parametrize(("old", "new"), [(0, 1), (None, 0), (0, None)])
def test_changed_initial_weights_fine_tune(
    store: MetadataStore,
    artifacts: ArtifactStore,
    register: Register,
    weights: list[WeightsRef],
    old: int | None,
    new: int | None,
) -> None:
    tune(store, register("reference"), init=weights[old] if old is not None else None)
    current = weights[new].sha256 if new is not None else None
    decision = decide(store, artifacts, inputs("same", init_weights_sha256=current))
    assert decision.action == Action.FINE_TUNE
    assert len(decision.reasons) == 1
    assert decision.evidence["init_weights"]["current"] == current


def test_unchanged_initial_weights_do_not_fine_tune(
    store: MetadataStore, artifacts: ArtifactStore, register: Register, weights: list[WeightsRef]
) -> None:
    tune(store, register("reference"), init=weights[1])
    current = inputs("same", init_weights_sha256=weights[1].sha256)
    assert decide(store, artifacts, current).action == Action.REUSE


def test_changed_architecture_reformalizes(
    store: MetadataStore, artifacts: ArtifactStore, register: Register
) -> None:
    tune(store, register("reference"), architecture=ARCH.sha256)
    decision = decide(store, artifacts, PolicyInputs(statistics("same"), WIDER.sha256))
    assert decision.action == Action.REFORMALIZE
    assert decision.evidence["architecture"] == {"tuned": ARCH.sha256, "current": WIDER.sha256}
    assert decision.reasons == (
        f"the architecture changed ({ARCH.sha256[:12]} -> {WIDER.sha256[:12]})",
    )


def test_anomalies_beyond_the_budget_stop_and_within_it_do_not(
    store: MetadataStore,
    artifacts: ArtifactStore,
    register: Register,
    prepared: dict[str, PreparedDataset],
) -> None:
    tune(store, register("reference"))
    # Fresh samples of the same distribution reach past the reference's exact min and max.
    found = anomalies(prepared, "same")
    assert found and {a.kind for a in found} == {"out_of_range"}
    over = decide(store, artifacts, inputs(anomalies=found, error_budget=len(found) - 1))
    assert over.action == Action.STOP
    assert over.evidence["anomalies"]["count"] == len(found)
    assert over.evidence["anomalies"]["by_kind"] == {"out_of_range": len(found)}
    assert over.reasons[0].startswith(f"{len(found)} schema anomalies exceed the error budget")
    within = decide(store, artifacts, inputs(anomalies=found, error_budget=len(found)))
    assert within.action == Action.REUSE


def test_a_broken_batch_stops(
    store: MetadataStore, artifacts: ArtifactStore, register: Register
) -> None:
    tune(store, register("reference"))
    broken = TABLES["same"].drop_columns(["miles"]).append_column("extra", pa.array([1] * 4000))
    stats = compute_statistics(broken.to_batches(), label=LABEL, threads=1)
    schema = infer_schema(statistics("reference"))
    decision = decide(
        store, artifacts, PolicyInputs(stats, ARCH.sha256, anomalies=validate(stats, schema))
    )
    assert decision.action == Action.STOP
    assert {"missing_column", "new_column"} <= set(decision.evidence["anomalies"]["by_kind"])
    assert decision.drift is None  # nothing is trained, so drift is not worth computing


def test_drift_thresholds_decide_what_drifted(
    store: MetadataStore, artifacts: ArtifactStore, register: Register
) -> None:
    tune(store, register("reference"))
    strict = decide(store, artifacts, inputs("same", thresholds={JENSEN_SHANNON: 0.001}))
    assert strict.action == Action.RETUNE
    assert {f["name"] for f in strict.evidence["drift"]["features"]} >= {"fare", "miles"}
    assert strict.evidence["drift"]["thresholds"] == {JENSEN_SHANNON: 0.001, L_INFINITY: 0.1}
    lenient = inputs("drifted", feature_thresholds={"fare": 0.9, "payment": 0.9})
    assert decide(store, artifacts, lenient).action == Action.REUSE


# ---- precedence ----------------------------------------------------------------------


def test_precedence_when_several_hold(
    store: MetadataStore,
    artifacts: ArtifactStore,
    register: Register,
    weights: list[WeightsRef],
    prepared: dict[str, PreparedDataset],
) -> None:
    tune(store, register("reference"), init=weights[0])
    found = anomalies(prepared, "drifted")
    new_weights = weights[1].sha256
    everything = PolicyInputs(
        statistics("drifted"), WIDER.sha256, anomalies=found, init_weights_sha256=new_weights
    )
    decision = decide(store, artifacts, everything)
    assert decision.action == Action.STOP
    assert [r.split()[1:3] for r in decision.reasons] == [
        ["schema", "anomalies"],
        ["architecture", "changed"],
        ["initial", "weights"],
    ]
    no_stop = PolicyInputs(
        statistics("drifted"),
        WIDER.sha256,
        anomalies=found,
        error_budget=len(found),
        init_weights_sha256=new_weights,
    )
    decision = decide(store, artifacts, no_stop)
    assert decision.action == Action.REFORMALIZE and len(decision.reasons) == 2
    assert "drift" not in decision.evidence  # a full study runs whatever the drift
    same_arch = inputs("drifted", init_weights_sha256=new_weights)
    assert decide(store, artifacts, same_arch).action == Action.FINE_TUNE
    only_drift = inputs("drifted", init_weights_sha256=weights[0].sha256)
    assert decide(store, artifacts, only_drift).action == Action.RETUNE


def test_stop_outranks_nothing_tuned_yet(
    store: MetadataStore, artifacts: ArtifactStore, prepared: dict[str, PreparedDataset]
) -> None:
    found = anomalies(prepared, "drifted")
    decision = decide(store, artifacts, inputs("drifted", anomalies=found))
    assert decision.action == Action.STOP
    assert decision.reasons[1:] == (NOTHING_TUNED,)


def test_the_newest_hyperparameters_are_the_ones_compared(
    store: MetadataStore, artifacts: ArtifactStore, register: Register
) -> None:
    reference = register("reference")
    tune(store, reference, architecture=ARCH.sha256, name="first")
    newest = tune(store, reference, architecture=WIDER.sha256, name="second")
    decision = decide(store, artifacts, PolicyInputs(statistics("same"), WIDER.sha256))
    assert decision.action == Action.REUSE
    assert decision.evidence["hyperparameters"]["id"] == newest.id


def test_what_the_tuning_step_did_not_record_is_not_trusted(
    store: MetadataStore, artifacts: ArtifactStore, register: Register
) -> None:
    reference = register("reference")
    tune(store, reference, architecture=None, name="no-architecture")
    decision = decide(store, artifacts, inputs())
    assert decision.action == Action.REFORMALIZE
    assert decision.reasons == ("the hyperparameters record no architecture hash",)
    tune(store, None, name="no-dataset-version")
    decision = decide(store, artifacts, inputs())
    assert decision.action == Action.RETUNE
    assert "not recorded" in decision.reasons[0] and decision.evidence["drift"] is None


def test_inputs_are_checked_where_they_are_made() -> None:
    stats = statistics("same")
    with pytest.raises(InvalidArgument, match="error budget"):
        PolicyInputs(stats, ARCH.sha256, error_budget=-1)
    with pytest.raises(InvalidArgument, match="unknown drift metric 'psi'"):
        PolicyInputs(stats, ARCH.sha256, thresholds={"psi": 0.2})
    with pytest.raises(InvalidArgument, match="finite"):
        PolicyInputs(stats, ARCH.sha256, feature_thresholds={"fare": float("inf")})
    with pytest.raises(InvalidArgument, match="architecture hash"):
        PolicyInputs(stats, "")


# ---- the recorded decision and its lineage -------------------------------------------


def inputs_of(store: MetadataStore, artifact: Artifact) -> dict[str, int]:
    """Path -> artifact id of the inputs of the execution that produced `artifact`."""
    assert artifact.id is not None
    [made] = [
        e for e in store.find_events(artifact_ids=[artifact.id]) if e.type == EventType.OUTPUT
    ]
    events = store.find_events(execution_ids=[made.execution_id])
    return {str(e.path): e.artifact_id for e in events if e.type == EventType.INPUT}


def test_a_drift_decision_is_recorded_with_its_report_in_lineage(
    store: MetadataStore,
    artifacts: ArtifactStore,
    register: Register,
    prepared: dict[str, PreparedDataset],
) -> None:
    reference = register("reference")
    tuned = tune(store, reference)
    dataset = register("drifted")
    decision = decide(store, artifacts, PolicyInputs(prepared["drifted"].statistics, ARCH.sha256))
    assert decision.action == Action.RETUNE
    recorded = record_decision(store, artifacts, decision, dataset=dataset, hyperparameters=tuned)
    assert recorded.type == POLICY_DECISION
    assert recorded.properties == {"action": "RETUNE", "dataset_version": dataset.sha256}
    assert recorded.custom_properties["reasons"] == list(decision.reasons)
    assert recorded.custom_properties["evidence"] == decision.evidence
    [execution] = store.find_executions(type=DECIDE)
    assert execution.properties["action"] == "RETUNE"
    linked = inputs_of(store, recorded)
    assert set(linked) == {"dataset", "hyperparameters", "drift_report"}
    assert (linked["dataset"], linked["hyperparameters"]) == (dataset.id, tuned.id)
    report = store.get_artifact(linked["drift_report"])
    assert report.type == datasets.DRIFT_REPORT and report.properties["drifted"] is True
    assert sorted(report.custom_properties["drifted_features"]) == ["fare", "payment"]
    # the report compares the statistics the hyperparameters were tuned on with the new ones
    compared = inputs_of(store, report)
    tuned_on = decision.evidence["drift"]["reference_statistics"]
    assert compared["baseline"] == tuned_on
    assert inputs_of(store, store.get_artifact(tuned_on)) == inputs_of(store, reference)
    current = store.get_artifact(compared["current"])
    assert current.type == datasets.STATISTICS
    assert inputs_of(store, current) == inputs_of(store, dataset)
    # and lineage walks from the decision back to both dataset versions
    graph = store.lineage(artifact_id=recorded.id, direction="upstream", depth=4)
    assert {reference.id, dataset.id} <= {a.id for a in graph.artifacts}


def test_a_decision_without_drift_links_what_it_had(
    store: MetadataStore, artifacts: ArtifactStore, register: Register
) -> None:
    dataset = register("reference")
    decision = decide(store, artifacts, inputs())
    recorded = record_decision(store, artifacts, decision, dataset=dataset, hyperparameters=None)
    assert recorded.properties["action"] == "REFORMALIZE"
    assert inputs_of(store, recorded) == {"dataset": dataset.id}
    assert store.find_artifacts(type=datasets.DRIFT_REPORT) == []


def test_a_decision_is_recorded_against_its_own_hyperparameters(
    store: MetadataStore, artifacts: ArtifactStore, register: Register
) -> None:
    reference = register("reference")
    older = tune(store, reference, name="older")
    tune(store, reference, name="newer")
    decision = decide(store, artifacts, inputs())
    with pytest.raises(InvalidArgument, match="taken against hyperparameters"):
        record_decision(store, artifacts, decision, dataset=reference, hyperparameters=older)
    with pytest.raises(InvalidArgument, match="needs the dataset version"):
        record_decision(
            store,
            artifacts,
            decision,
            dataset=None,
            hyperparameters=store.get_artifact(decision.evidence["hyperparameters"]["id"]),
        )
    assert store.find_artifacts(type=POLICY_DECISION) == []


def test_decide_reads_only(
    store: MetadataStore, artifacts: ArtifactStore, register: Register
) -> None:
    tune(store, register("reference"))
    before = store.counts()
    decision = decide(store, artifacts, inputs("drifted"))
    assert isinstance(decision, Decision) and decision.drift is not None
    assert store.counts() == before
