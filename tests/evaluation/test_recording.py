"""Evaluations and gate decisions in the stores (SQLite and PostgreSQL): lineage, alias moves."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest

from ratchet import datasets
from ratchet.artifacts import hash_path
from ratchet.data.engines.local import PreparedDataset
from ratchet.errors import FailedPrecondition, InvalidArgument
from ratchet.evaluation import (
    GateConfig,
    decide_and_promote,
    evaluate,
    find_decisions,
    find_evaluations,
    gate,
    load_evaluation,
    record_evaluation,
)
from ratchet.metadata import Artifact
from ratchet.registry import CHAMPION, MOVE_ALIAS, Registry
from ratchet.training.bundle import Bundle


def _dataset(registry: Registry, churn: PreparedDataset) -> Artifact:
    artifact, _ = datasets.record_dataset(
        registry.store,
        registry.artifacts,
        churn,
        name="churn",
        source="frame",
        version=hash_path(churn.folder),
        started=time.time(),
    )
    return artifact


def test_an_evaluation_is_downstream_of_the_model_and_the_dataset(
    registry: Registry,
    churn: PreparedDataset,
    trained: dict[str, Path],
    raw_test: pa.Table,
    logistic: Bundle,
) -> None:
    dataset = _dataset(registry, churn)
    version = registry.register("churn", trained["logistic"])
    evaluation = evaluate(logistic, raw_test, slices=["color"])
    recorded = record_evaluation(
        registry.store,
        registry.artifacts,
        evaluation,
        model_version=version,
        dataset_version=dataset.sha256,
    )
    assert recorded.properties["fingerprint"] == evaluation.fingerprint
    assert recorded.properties["rows"] == raw_test.num_rows
    assert recorded.properties["dataset_version"] == dataset.sha256
    summary = recorded.custom_properties["metrics"]
    assert isinstance(summary, dict)
    assert summary["log_loss"] == pytest.approx(evaluation.overall.metrics["log_loss"])
    store = registry.store
    assert recorded.id is not None
    downstream = store.lineage(artifact_id=version.artifact_id, direction="downstream", depth=2)
    assert recorded.id in {a.id for a in downstream.artifacts}
    upstream = store.lineage(artifact_id=recorded.id, direction="upstream", depth=2)
    assert {version.artifact_id, dataset.id} <= {a.id for a in upstream.artifacts}
    assert load_evaluation(store, registry.artifacts, recorded.id) == evaluation
    found = find_evaluations(store, "churn", 1, fingerprint=evaluation.fingerprint)
    assert [a.id for a in found] == [recorded.id]
    assert find_evaluations(store, "churn", 2) == []
    with pytest.raises(InvalidArgument, match="not an Evaluation"):
        load_evaluation(store, registry.artifacts, version.artifact_id)


def test_the_gate_promotes_rejects_and_rollback_restores(
    registry: Registry,
    trained: dict[str, Path],
    raw_test: pa.Table,
    logistic: Bundle,
    lightgbm: Bundle,
) -> None:
    store, artifacts = registry.store, registry.artifacts
    weak = evaluate(lightgbm, raw_test, slices=["color"])
    strong = evaluate(logistic, raw_test, slices=["color"])
    config = GateConfig(min_improvement=0.01, max_slice_regression=0.05)

    v1 = registry.register("churn", trained["lightgbm"])
    first = decide_and_promote(registry, gate(weak, None, config), candidate=v1, champion=None)
    assert first.properties["promote"] is True
    assert first.custom_properties["reasons"] == ["no champion"]
    assert registry.aliases("churn") == {CHAMPION: 1}

    v2 = registry.register("churn", trained["logistic"])
    for evaluation, version in ((weak, v1), (strong, v2)):
        record_evaluation(store, artifacts, evaluation, model_version=version)
    decision = gate(strong, weak, config)
    assert decision.promote, decision.reasons
    recorded = decide_and_promote(registry, decision, candidate=v2, champion=v1)
    assert registry.get("churn:champion").version == 2
    assert recorded.id is not None
    inputs = store.lineage(artifact_id=recorded.id, direction="upstream", depth=2).artifacts
    assert {a.type for a in inputs} >= {"ModelVersion", "Evaluation"}
    assert len([a for a in inputs if a.type == "Evaluation"]) == 2
    last_move = store.find_executions(type=MOVE_ALIAS, newest_first=True)[0]
    assert str(last_move.properties["reason"]).startswith(f"gate decision {recorded.id}: log_loss")

    v3 = registry.register("churn", trained["lightgbm"])
    rejected = gate(weak, strong, config)
    assert not rejected.promote and "not better" in rejected.reasons[0]
    stored = decide_and_promote(registry, rejected, candidate=v3, champion=v2)
    assert stored.properties["promote"] is False
    assert stored.custom_properties["reasons"] == list(rejected.reasons)
    assert registry.get("churn:champion").version == 2  # a rejection moves nothing
    assert [a.id for a in find_decisions(store, "churn")] == [stored.id, recorded.id, first.id]

    # The champion moved since v1 was evaluated as champion: the decision is stale.
    with pytest.raises(FailedPrecondition, match="points at version 2, not 1"):
        decide_and_promote(registry, gate(strong, weak, config), candidate=v3, champion=v1)
    with pytest.raises(InvalidArgument, match="without churn@2's evaluation"):
        decide_and_promote(registry, gate(weak, None), candidate=v3, champion=v2)

    assert registry.rollback("churn").version == 1
    assert registry.get("churn:champion").version == 1
