"""Tuning results in the metadata store: the best hyperparameters, as an artifact pipelines read.

Owns `record_best` (a `Hyperparameters` artifact holding the best trial's values,
its metric, the study and the dataset version it was tuned on, produced by a
`Tune` execution whose inputs are that dataset and the initial weights) and
`find_hyperparameters` (the newest recorded, of a study or of any). The
training pipeline's policy reads these to decide between reuse, retune and
fine-tune.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

from ratchet.metadata import (
    Artifact,
    Execution,
    ExecutionState,
    Kind,
    MetadataStore,
    PropertyType,
    RecordType,
)
from ratchet.metadata.rows import to_datetime
from ratchet.tuning.study import Study

if TYPE_CHECKING:
    # An annotation only: the hub imports torch (over a second), which a process that
    # runs or records a study does not otherwise need.
    from ratchet.training.hub import WeightsRef

HYPERPARAMETERS = "Hyperparameters"
TUNE = "Tune"
TYPES = (
    RecordType(
        Kind.ARTIFACT,
        HYPERPARAMETERS,
        {
            "study": PropertyType.STRING,
            "trial": PropertyType.INT,
            "metric": PropertyType.STRING,
            "value": PropertyType.DOUBLE,
            "dataset_version": PropertyType.STRING,
            "model": PropertyType.STRING,  # the formalized model they were tuned for
        },
    ),
    RecordType(Kind.EXECUTION, TUNE, {"study": PropertyType.STRING}),
)


def record_best(
    study: Study,
    store: MetadataStore,
    *,
    dataset_version: str | None = None,
    init_weights: WeightsRef | None = None,
    fixed: dict[str, Any] | None = None,
    architecture_sha256: str | None = None,
    start_weights: WeightsRef | None = None,
    model: str | None = None,
) -> Artifact:
    """The study's best trial as a `Hyperparameters` artifact (with `fixed` merged in).

    `model` names the formalized model they were tuned for, so two models in one
    store each find their own (`find_hyperparameters(store, model=...)`).

    `init_weights` are the domain-specific weights the study was tuned for (what the
    policy compares: a change means fine-tuning); `start_weights` the weights its
    trials actually started from (after warmup and pre-training), an input in lineage.
    """
    for record_type in TYPES:
        store.put_type(record_type)
    best = study.best_trials()[0]
    metric = study.config.metrics[0].name
    values = {**(fixed or {}), **best.parameters}
    text = json.dumps(values, sort_keys=True)
    properties: dict[str, Any] = {
        "study": study.name,
        "trial": best.number,
        "metric": metric,
        "value": best.metrics[metric],
    }
    if dataset_version is not None:
        properties["dataset_version"] = dataset_version
    if model is not None:
        properties["model"] = model
    custom: dict[str, Any] = {"values": values, "metrics": best.metrics}
    if init_weights is not None:
        custom["init_weights"] = init_weights.sha256
    if start_weights is not None:
        custom["start_weights"] = start_weights.sha256
    if architecture_sha256 is not None:
        # What the policy compares to decide on re-formalizing (`ratchet.formalize.policy`).
        custom["architecture_sha256"] = architecture_sha256
    artifact = Artifact(
        HYPERPARAMETERS,
        uri=f"study://{study.name}/{best.number}",
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        name=f"{study.name}@{best.number}",
        properties=properties,
        custom_properties=custom,
    )
    inputs: dict[str, Artifact] = {}
    if dataset_version is not None:
        found = store.find_artifacts(type="Dataset", sha256=dataset_version)
        if found:
            inputs["dataset"] = found[0]
    for role, weights in (("domain_weights", init_weights), ("initial_weights", start_weights)):
        if weights is not None:
            inputs[role] = store.get_artifact(weights.artifact_id)
    now = to_datetime(time.time())
    written = store.put_execution(
        Execution(
            TUNE,
            state=ExecutionState.COMPLETE,
            properties={"study": study.name},
            custom_properties={"trials": len(study.trials())},
            start_time=now,
            end_time=now,
        ),
        inputs=inputs,
        outputs={"hyperparameters": artifact},
    )
    return written.outputs["hyperparameters"]


def find_hyperparameters(
    store: MetadataStore, study: str | None = None, *, model: str | None = None
) -> list[Artifact]:
    """Recorded best hyperparameters, newest first (of one study, or one model's, or all)."""
    for record_type in TYPES:
        store.put_type(record_type)
    filters: dict[str, Any] = {"type": HYPERPARAMETERS, "newest_first": True}
    chosen = {"study": study, "model": model}
    if any(value is not None for value in chosen.values()):
        filters["properties"] = {k: v for k, v in chosen.items() if v is not None}
    return store.find_artifacts(**filters)
