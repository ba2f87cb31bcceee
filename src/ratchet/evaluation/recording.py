"""Evaluations in the stores: JSON in the artifact store, lineage in the metadata store.

Owns the `Evaluation` artifact type (model, version, row fingerprint, rows,
task, dataset version; the overall metrics as its summary) and the `Evaluate`
execution that produces it from the `ModelVersion` artifact and, when it is
registered, the `Dataset` version it read, inside the model's
`RegisteredModel` context: an evaluation is downstream of the model it scored
and of the data it scored it on. Computing evaluations is `report`'s.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from ratchet.artifacts import ArtifactStore
from ratchet.datasets import DATASET
from ratchet.errors import InvalidArgument
from ratchet.evaluation.report import Evaluation
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
from ratchet.registry import REGISTERED_MODEL, ModelVersion

EVALUATION, EVALUATE = "Evaluation", "Evaluate"
TYPES = (
    RecordType(
        Kind.ARTIFACT,
        EVALUATION,
        {
            "model": PropertyType.STRING,
            "version": PropertyType.INT,
            "fingerprint": PropertyType.STRING,
            "rows": PropertyType.INT,
            "task": PropertyType.STRING,
            "dataset_version": PropertyType.STRING,
        },
    ),
    RecordType(
        Kind.EXECUTION, EVALUATE, {"model": PropertyType.STRING, "version": PropertyType.INT}
    ),
)


def register_types(store: MetadataStore) -> None:
    """Declare the record types; declaring them again is harmless."""
    for record_type in TYPES:
        store.put_type(record_type)


def finite(values: dict[str, float]) -> dict[str, float]:
    """The finite values: an undefined metric (NaN) is left out of a property, not stored."""
    return {k: float(v) for k, v in values.items() if math.isfinite(v)}


def record_evaluation(
    store: MetadataStore,
    artifacts: ArtifactStore,
    evaluation: Evaluation,
    *,
    model_version: ModelVersion,
    dataset_version: str | None = None,
) -> Artifact:
    """Store `evaluation` of `model_version` as an Evaluation artifact; returns it.

    `dataset_version` is a dataset's content hash (`ratchet.datasets`): when such a
    Dataset is registered it becomes an input of the Evaluate execution; either way
    the hash is kept on the evaluation.
    """
    started = time.time()
    register_types(store)
    data = json.dumps(evaluation.to_dict(), sort_keys=True, allow_nan=False).encode()
    stored = artifacts.put_bytes(data)
    properties: dict[str, Any] = {
        "model": model_version.name,
        "version": model_version.version,
        "fingerprint": evaluation.fingerprint,
        "rows": evaluation.rows,
        "task": evaluation.task.kind,
    }
    inputs = {"model": store.get_artifact(model_version.artifact_id)}
    if dataset_version:
        properties["dataset_version"] = dataset_version
        found = store.find_artifacts(type=DATASET, sha256=dataset_version)
        if found:
            inputs["dataset"] = found[0]
    artifact = Artifact(
        EVALUATION,
        uri=stored.uri,
        sha256=stored.sha256,
        properties=properties,
        custom_properties={
            "metrics": finite(dict(evaluation.overall.metrics)),
            "slices": {s.name: s.rows for s in evaluation.slices},
            "unlabelled": evaluation.unlabelled,
        },
    )
    context = store.find_context(REGISTERED_MODEL, model_version.name)
    written = store.put_execution(
        Execution(
            EVALUATE,
            state=ExecutionState.COMPLETE,
            properties={"model": model_version.name, "version": model_version.version},
            start_time=to_datetime(started),
            end_time=to_datetime(time.time()),
        ),
        inputs=inputs,
        outputs={"evaluation": artifact},
        contexts=[context] if context is not None else [],
    )
    return written.outputs["evaluation"]


def load_evaluation(store: MetadataStore, artifacts: ArtifactStore, artifact_id: int) -> Evaluation:
    """The Evaluation a recorded artifact holds (its bytes checked against their hash)."""
    artifact = store.get_artifact(artifact_id)
    if artifact.type != EVALUATION or artifact.sha256 is None:
        raise InvalidArgument(f"artifact {artifact_id} is a {artifact.type}, not an {EVALUATION}")
    with artifacts.open(artifact.sha256) as handle:
        return Evaluation.from_dict(json.load(handle))


def find_evaluations(
    store: MetadataStore,
    name: str,
    version: int | None = None,
    *,
    fingerprint: str | None = None,
) -> list[Artifact]:
    """Recorded evaluations of a model (one version, one set of rows), newest first."""
    wanted: dict[str, Any] = {"model": name}
    if version is not None:
        wanted["version"] = version
    if fingerprint is not None:
        wanted["fingerprint"] = fingerprint
    return store.find_artifacts(type=EVALUATION, properties=wanted, newest_first=True)
