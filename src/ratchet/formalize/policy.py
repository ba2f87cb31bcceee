"""The formalization policy: what a pass does with a new dataset version, and why.

Owns the `Action`s (STOP, REFORMALIZE, FINE_TUNE, RETUNE, REUSE, in that order of
precedence), `PolicyInputs`, `decide` (the checks, in that order, against the
newest `Hyperparameters` artifact), the `Decision` with its reasons and evidence,
and `record_decision` (a `PolicyDecision` artifact out of a `Decide` execution
whose inputs are the dataset version, the hyperparameters and the drift report).

It computes no statistics, anomalies nor drift distances itself (`ratchet.data`),
record tuning results (`ratchet.tuning.results`) nor act on the decision
(`ratchet.formalize.passes`). What it compares must have been recorded by the
tuning step on the `Hyperparameters` artifact: the `dataset_version` property
(a `Dataset` sha256, whose `PrepareDataset` execution also wrote its
"statistics"), and the custom properties `architecture_sha256` (the
`MLPSpec.sha256` the study trained) and `init_weights` (the sha256 of the
domain-specific initial weights the study was tuned for, not the warmed-up or
pre-trained weights derived from them; absent when there were none).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ratchet import datasets
from ratchet.artifacts import ArtifactStore
from ratchet.data.drift import DEFAULT_THRESHOLDS, DriftReport, compare
from ratchet.data.schema import Anomaly
from ratchet.data.stats import DatasetStatistics
from ratchet.errors import InvalidArgument
from ratchet.metadata import (
    Artifact,
    EventType,
    Execution,
    ExecutionState,
    Kind,
    MetadataStore,
    PropertyType,
    RecordType,
)
from ratchet.metadata.rows import to_datetime
from ratchet.tuning.results import find_hyperparameters

POLICY_DECISION = "PolicyDecision"
DECIDE = "Decide"
TYPES = (
    RecordType(
        Kind.ARTIFACT,
        POLICY_DECISION,
        {"action": PropertyType.STRING, "dataset_version": PropertyType.STRING},
    ),
    RecordType(Kind.EXECUTION, DECIDE, {"action": PropertyType.STRING}),
)
NOTHING_TUNED = "nothing tuned yet"


class Action(StrEnum):
    """What a pass does; declared in order of precedence (the first that holds wins)."""

    STOP = "STOP"  # the data breaks the schema beyond the error budget: no training
    REFORMALIZE = "REFORMALIZE"  # baseline, warmup, pre-training and a full study
    FINE_TUNE = "FINE_TUNE"  # a warm-started, narrowed study
    RETUNE = "RETUNE"  # a new study
    REUSE = "REUSE"  # train with the hyperparameters from metadata


@dataclass(frozen=True)
class PolicyInputs:
    """What a pass knows about the new dataset version and the model it would train.

    `init_weights_sha256` names the domain-specific initial weights, the same kind
    the tuning step records as `init_weights` (see the module docstring), or None.
    `thresholds` are per drift metric, `feature_thresholds` per feature name.
    """

    statistics: DatasetStatistics
    architecture_sha256: str
    anomalies: Sequence[Anomaly] = ()
    error_budget: int = 0  # how many anomalies are tolerated before the pass stops
    init_weights_sha256: str | None = None
    thresholds: Mapping[str, float] = field(default_factory=dict)  # over DEFAULT_THRESHOLDS
    feature_thresholds: Mapping[str, float] = field(default_factory=dict)
    model: str | None = None  # whose hyperparameters to decide against (None: the newest)

    def __post_init__(self) -> None:
        if not self.architecture_sha256:
            raise InvalidArgument("the architecture hash is required")
        if self.error_budget < 0:
            raise InvalidArgument(f"the error budget must be >= 0, got {self.error_budget}")
        unknown = set(self.thresholds) - set(DEFAULT_THRESHOLDS)
        if unknown:
            known = ", ".join(sorted(DEFAULT_THRESHOLDS))
            raise InvalidArgument(f"unknown drift metric {sorted(unknown)[0]!r} (known: {known})")
        # Evidence is stored as JSON, which has no infinity: a threshold must be finite.
        for name, value in [*self.thresholds.items(), *self.feature_thresholds.items()]:
            if not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise InvalidArgument(f"drift threshold for {name!r} must be a finite number >= 0")


@dataclass(frozen=True)
class Decision:
    """The action, every reason that held (the decisive one first) and the evidence.

    `drift` and `reference` (the statistics artifact the hyperparameters were tuned
    on) are kept so that `record_decision` can put the drift report in lineage.
    """

    action: Action
    reasons: tuple[str, ...]
    evidence: dict[str, Any]
    drift: DriftReport | None = None
    reference: Artifact | None = None


def decide(store: MetadataStore, artifacts: ArtifactStore, inputs: PolicyInputs) -> Decision:
    """The action for a new dataset version, against the newest recorded hyperparameters.

    Reads only. The cheap checks (anomalies, hashes) all run so their evidence is
    complete; drift is computed only when no check above RETUNE holds, since every
    other action runs a study (or nothing) whatever the drift.
    """
    found: list[tuple[Action, str]] = []
    evidence: dict[str, Any] = {"anomalies": _anomaly_evidence(inputs)}
    if len(inputs.anomalies) > inputs.error_budget:
        kinds = ", ".join(f"{k}: {n}" for k, n in evidence["anomalies"]["by_kind"].items())
        count, budget = len(inputs.anomalies), inputs.error_budget
        stop = f"{count} schema anomalies exceed the error budget of {budget} ({kinds})"
        found.append((Action.STOP, stop))
    tuned = find_hyperparameters(store, model=inputs.model)
    if not tuned:
        evidence["hyperparameters"] = None
        found.append((Action.REFORMALIZE, NOTHING_TUNED))
        return _decision(found, evidence)
    hyperparameters = tuned[0]
    evidence["hyperparameters"] = {
        "id": hyperparameters.id,
        "name": hyperparameters.name,
        "dataset_version": hyperparameters.properties.get("dataset_version"),
    }
    custom = hyperparameters.custom_properties
    old_arch, new_arch = custom.get("architecture_sha256"), inputs.architecture_sha256
    evidence["architecture"] = {"tuned": old_arch, "current": new_arch}
    if old_arch is None:
        # Without the hash we cannot vouch that the hyperparameters fit this model;
        # re-formalizing records it, so this happens at most once.
        found.append((Action.REFORMALIZE, "the hyperparameters record no architecture hash"))
    elif old_arch != new_arch:
        changed = f"({_short(old_arch)} -> {_short(new_arch)})"
        found.append((Action.REFORMALIZE, f"the architecture changed {changed}"))
    old_init, new_init = custom.get("init_weights"), inputs.init_weights_sha256
    evidence["init_weights"] = {"tuned": old_init, "current": new_init}
    if old_init != new_init:
        changed = f"({_short(old_init)} -> {_short(new_init)})"
        found.append((Action.FINE_TUNE, f"the initial weights changed {changed}"))
    if found:
        return _decision(found, evidence)
    return _drift_decision(store, artifacts, inputs, hyperparameters, evidence)


def _drift_decision(
    store: MetadataStore,
    artifacts: ArtifactStore,
    inputs: PolicyInputs,
    hyperparameters: Artifact,
    evidence: dict[str, Any],
) -> Decision:
    """RETUNE or REUSE, by the drift from the statistics the hyperparameters were tuned on."""
    version = hyperparameters.properties.get("dataset_version")
    tuned_on = store.find_artifacts(type=datasets.DATASET, sha256=str(version)) if version else []
    reference = _statistics_of(store, tuned_on[0]) if tuned_on else None
    if reference is None or reference.id is None:
        # Hyperparameters we cannot compare the data with are not trusted with it.
        evidence["drift"] = None
        why = f"dataset version {_short(version)}" if version else "no dataset version"
        reason = f"the statistics the hyperparameters were tuned on are not recorded ({why})"
        return _decision([(Action.RETUNE, reason)], evidence)
    _, old = datasets.load_statistics(store, artifacts, reference.id)
    report = compare(
        old,
        inputs.statistics,
        thresholds=inputs.feature_thresholds,
        metric_thresholds=inputs.thresholds,
    )
    drifted = [f for f in report.features if f.drifted]
    evidence["drift"] = {
        "reference_statistics": reference.id,
        "dataset_version": version,
        "drifted": report.drifted,
        "compared": len(report.features),
        "thresholds": {**DEFAULT_THRESHOLDS, **inputs.thresholds},
        "feature_thresholds": dict(inputs.feature_thresholds),
        "features": [
            {"name": f.name, "metric": f.metric, "distance": f.distance, "threshold": f.threshold}
            for f in drifted
        ],
    }
    if report.drifted:
        listed = ", ".join(
            f"{f.name} ({f.metric} {f.distance:.3g} > {f.threshold:.3g})" for f in drifted
        )
        reason = f"statistics drifted from dataset version {_short(version)}: {listed}"
        return _decision([(Action.RETUNE, reason)], evidence, drift=report, reference=reference)
    reason = (
        f"statistics within drift thresholds of dataset version {_short(version)}; "
        "architecture and initial weights unchanged"
    )
    return _decision([(Action.REUSE, reason)], evidence, drift=report, reference=reference)


def record_decision(
    store: MetadataStore,
    artifacts: ArtifactStore,
    decision: Decision,
    *,
    dataset: Artifact | None,
    hyperparameters: Artifact | None,
) -> Artifact:
    """Record the decision as a `PolicyDecision` made by a `Decide` execution.

    Its inputs are `dataset` (the new version), `hyperparameters` (the ones decided
    against: they must be the decision's own) and, when drift was computed, the
    drift report, recorded here by `datasets.record_drift` between the statistics
    the hyperparameters were tuned on and the new version's statistics.
    """
    for record_type in TYPES:
        store.put_type(record_type)
    decided_on = (decision.evidence.get("hyperparameters") or {}).get("id")
    given = hyperparameters.id if hyperparameters is not None else None
    if given != decided_on:
        raise InvalidArgument(
            f"the decision was taken against hyperparameters {decided_on}, not {given}"
        )
    inputs: dict[str, Artifact] = {}
    if dataset is not None:
        inputs["dataset"] = dataset
    if hyperparameters is not None:
        inputs["hyperparameters"] = hyperparameters
    if decision.drift is not None and decision.reference is not None:
        if dataset is None:
            raise InvalidArgument("a decision on drift needs the dataset version it was taken for")
        # A dataset registered without statistics still anchors the report in lineage.
        current = _statistics_of(store, dataset) or dataset
        inputs["drift_report"] = datasets.record_drift(
            store, artifacts, decision.drift, baseline=decision.reference, current=current
        )
    properties: dict[str, Any] = {"action": decision.action.value}
    if dataset is not None and dataset.sha256:
        properties["dataset_version"] = dataset.sha256
    custom: dict[str, Any] = {"reasons": list(decision.reasons), "evidence": decision.evidence}
    output = Artifact(POLICY_DECISION, properties=properties, custom_properties=custom)
    now = to_datetime(time.time())
    execution = Execution(
        DECIDE,
        state=ExecutionState.COMPLETE,
        properties={"action": decision.action.value},
        start_time=now,
        end_time=now,
    )
    written = store.put_execution(execution, inputs=inputs, outputs={"decision": output})
    return written.outputs["decision"]


def _decision(
    found: Sequence[tuple[Action, str]],
    evidence: dict[str, Any],
    *,
    drift: DriftReport | None = None,
    reference: Artifact | None = None,
) -> Decision:
    # Actions are declared in precedence order, so the decisive one sorts first.
    ranked = sorted(found, key=lambda pair: list(Action).index(pair[0]))
    return Decision(ranked[0][0], tuple(r for _, r in ranked), evidence, drift, reference)


def _anomaly_evidence(inputs: PolicyInputs) -> dict[str, Any]:
    return {
        "count": len(inputs.anomalies),
        "budget": inputs.error_budget,
        "by_kind": dict(sorted(Counter(a.kind for a in inputs.anomalies).items())),
        "items": [
            {"feature": a.feature, "kind": a.kind, "description": a.description}
            for a in inputs.anomalies
        ],
    }


def _statistics_of(store: MetadataStore, dataset: Artifact) -> Artifact | None:
    """The "statistics" written by the execution that produced `dataset` (`record_dataset`).

    The whole version's statistics, not the train split's: the new version's are
    whole too, and the two must be alike to compare.
    """
    if dataset.id is None:
        return None
    producers = [
        e.execution_id
        for e in store.find_events(artifact_ids=[dataset.id])
        if e.type == EventType.OUTPUT
    ]
    for event in store.find_events(execution_ids=producers):
        if event.type == EventType.OUTPUT and event.path == "statistics":
            return store.get_artifact(event.artifact_id)
    return None


def _short(sha: object) -> str:
    return str(sha)[:12] if sha else "none"
