"""Recording data results in the metadata store: statistics, drift reports, dataset versions.

Owns the record types of the data pipeline's results ("DatasetStatistics" and
"DriftReport" artifacts, "ComputeStatistics" and "DetectDrift" executions; the
dataset registry: "Dataset" versions identified by the content hash of their folder,
produced by a "PrepareDataset" execution from a "DataSource" together with their
statistics, schema and transform), the
writing of their JSON to the artifact store, and reading recorded statistics
back. The computations live in `ratchet.data`, which never touches the stores;
the commands that call this module live in `ratchet.cli.data`.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import replace
from typing import Any

from ratchet.artifacts import ArtifactStore, hash_path
from ratchet.data.drift import DriftReport
from ratchet.data.engines.local import PreparedDataset
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

STATISTICS = "DatasetStatistics"
DRIFT_REPORT = "DriftReport"
COMPUTE_STATISTICS = "ComputeStatistics"
DETECT_DRIFT = "DetectDrift"

RECORD_TYPES = (
    RecordType(
        Kind.ARTIFACT,
        STATISTICS,
        {"rows": PropertyType.INT, "features": PropertyType.INT, "source": PropertyType.STRING},
    ),
    RecordType(
        Kind.ARTIFACT,
        DRIFT_REPORT,
        {"drifted": PropertyType.BOOL, "features": PropertyType.INT},
    ),
    RecordType(Kind.EXECUTION, COMPUTE_STATISTICS, {"source": PropertyType.STRING}),
    RecordType(Kind.EXECUTION, DETECT_DRIFT),
)


def register_types(store: MetadataStore) -> None:
    """Declare the record types; declaring them again is harmless."""
    for record_type in RECORD_TYPES:
        store.put_type(record_type)


def _json_bytes(data: dict[str, Any]) -> bytes:
    # Infinite or NaN values (e.g. PSI against an empty cell) are not JSON: store them as null.
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(data), sort_keys=True, allow_nan=False).encode()


def record_statistics(
    store: MetadataStore,
    artifacts: ArtifactStore,
    stats: DatasetStatistics,
    *,
    source: str,
    quarantined: int = 0,
) -> Artifact:
    """Store the statistics' JSON and record it as the output of a ComputeStatistics execution."""
    started = time.time()
    register_types(store)
    stored = artifacts.put_bytes(_json_bytes(stats.to_dict()))
    artifact = Artifact(
        STATISTICS,
        uri=stored.uri,
        sha256=stored.sha256,
        properties={"rows": stats.rows, "features": len(stats.features), "source": source},
        custom_properties={"label": stats.label or "", "quarantined_rows": quarantined},
    )
    execution = Execution(
        COMPUTE_STATISTICS,
        state=ExecutionState.COMPLETE,
        properties={"source": source},
        start_time=to_datetime(started),
        end_time=to_datetime(time.time()),
    )
    written = store.put_execution(execution, outputs={"statistics": artifact})
    return written.outputs["statistics"]


def load_statistics(
    store: MetadataStore, artifacts: ArtifactStore, artifact_id: int
) -> tuple[Artifact, DatasetStatistics]:
    """A recorded DatasetStatistics artifact and the statistics it holds."""
    artifact = store.get_artifact(artifact_id)
    if artifact.type != STATISTICS or artifact.sha256 is None:
        raise InvalidArgument(f"artifact {artifact_id} is a {artifact.type}, not {STATISTICS}")
    with artifacts.open(artifact.sha256) as handle:
        data = json.load(handle)
    return artifact, DatasetStatistics.from_dict(data)


def record_drift(
    store: MetadataStore,
    artifacts: ArtifactStore,
    report: DriftReport,
    *,
    baseline: Artifact,
    current: Artifact,
) -> Artifact:
    """Store the report's JSON and record a DetectDrift execution reading both statistics."""
    register_types(store)
    stored = artifacts.put_bytes(_json_bytes(report.to_dict()))
    drifted = [f.name for f in report.features if f.drifted]
    artifact = Artifact(
        DRIFT_REPORT,
        uri=stored.uri,
        sha256=stored.sha256,
        properties={"drifted": report.drifted, "features": len(report.features)},
        custom_properties={"drifted_features": drifted},
    )
    written = store.put_execution(
        Execution(DETECT_DRIFT, state=ExecutionState.COMPLETE),
        inputs={"baseline": baseline, "current": current},
        outputs={"drift_report": artifact},
    )
    return written.outputs["drift_report"]


DATASET = "Dataset"
SCHEMA = "Schema"
TRANSFORM = "Transform"
DATA_SOURCE = "DataSource"
PREPARE_DATASET = "PrepareDataset"
DATASET_TYPES = (
    RecordType(
        Kind.ARTIFACT,
        DATASET,
        {
            "name": PropertyType.STRING,
            "version": PropertyType.STRING,
            "rows": PropertyType.INT,
            "label": PropertyType.STRING,
        },
    ),
    RecordType(Kind.ARTIFACT, SCHEMA, {"version": PropertyType.STRING}),
    RecordType(Kind.ARTIFACT, TRANSFORM, {"version": PropertyType.STRING}),
    RecordType(Kind.ARTIFACT, DATA_SOURCE),
    RecordType(Kind.EXECUTION, PREPARE_DATASET, {"name": PropertyType.STRING}),
)


def record_dataset(
    store: MetadataStore,
    artifacts: ArtifactStore,
    prepared: PreparedDataset,
    *,
    name: str,
    source: str,
    version: str,
    started: float,
) -> tuple[Artifact, bool]:
    """Register a prepared dataset folder as a version of `name`; returns (dataset, is_new).

    `version` is the content hash of the folder (`artifacts.hash_path`), so preparing the
    same data the same way again finds the version registered and records nothing new.
    """
    register_types(store)
    for record_type in DATASET_TYPES:
        store.put_type(record_type)
    known = store.find_artifacts(type=DATASET, sha256=version)
    if known:
        return known[0], False

    def stored(kind: str, data: bytes, **properties: Any) -> Artifact:
        put = artifacts.put_bytes(data)
        return Artifact(kind, uri=put.uri, sha256=put.sha256, properties=properties)

    outputs = {
        "dataset": Artifact(
            DATASET,
            uri=str(prepared.folder),
            sha256=version,
            name=f"{name}@{version[:12]}",
            properties={
                "name": name,
                "version": version,
                "rows": sum(prepared.rows.values()),
                "label": prepared.statistics.label or "",
            },
            custom_properties={
                "splits": dict(prepared.rows),
                "quarantined_rows": prepared.quarantine.count,
            },
        ),
        "statistics": stored(
            STATISTICS,
            _json_bytes(prepared.statistics.to_dict()),
            rows=prepared.statistics.rows,
            features=len(prepared.statistics.features),
            source=source,
        ),
        "train_statistics": stored(
            STATISTICS,
            _json_bytes(prepared.train_statistics.to_dict()),
            rows=prepared.train_statistics.rows,
            features=len(prepared.train_statistics.features),
            source=source,
        ),
        "schema": stored(
            SCHEMA, prepared.schema.to_yaml().encode(), version=prepared.schema.version
        ),
        "transform": stored(
            TRANSFORM, prepared.transform.to_json().encode(), version=prepared.transform.version
        ),
    }
    written = store.put_execution(
        Execution(
            PREPARE_DATASET,
            state=ExecutionState.COMPLETE,
            properties={"name": name},
            start_time=to_datetime(started),
            end_time=to_datetime(time.time()),
        ),
        inputs={"source": Artifact(DATA_SOURCE, uri=source)},
        outputs=outputs,
    )
    return written.outputs["dataset"], True


def find_versions(store: MetadataStore, name: str | None = None) -> list[Artifact]:
    """Registered dataset versions, newest first, of one name or all."""
    register_types(store)
    for record_type in DATASET_TYPES:
        store.put_type(record_type)
    filters: dict[str, Any] = {"type": DATASET, "newest_first": True}
    if name is not None:
        filters["properties"] = {"name": name}
    return [a for a in store.find_artifacts(**filters) if "version" in a.properties]


def version_parts(store: MetadataStore, dataset: Artifact) -> dict[str, Artifact]:
    """What was prepared with a dataset version, by role: its statistics, train
    statistics, schema and transform (the other outputs of the execution that made it).

    A model built on the version names these as its inputs, so its lineage answers
    which statistics and which transform it was trained with.
    """
    assert dataset.id is not None
    made = [
        e.execution_id
        for e in store.find_events(artifact_ids=[dataset.id])
        if e.type == EventType.OUTPUT
    ]
    siblings = store.find_events(execution_ids=made[:1])
    return {
        str(e.path): store.get_artifact(e.artifact_id)
        for e in siblings
        if e.type == EventType.OUTPUT and e.path not in (None, "dataset")
    }


def publish_version(
    store: MetadataStore,
    artifacts: ArtifactStore,
    prepared: PreparedDataset,
    *,
    name: str,
    source: str,
    started: float,
) -> tuple[Artifact, PreparedDataset, bool]:
    """Move a prepared staging folder to `<its parent>/<version[:12]>` and register it.

    The version is the folder's content hash; preparing the same data the same way again
    finds that folder and that record, and the staging copy is dropped.
    """
    staging = prepared.folder
    version = hash_path(staging)
    final = staging.parent / version[:12]
    if final.exists():
        shutil.rmtree(staging)
    else:
        staging.rename(final)
    prepared = replace(prepared, folder=final)
    dataset, is_new = record_dataset(
        store, artifacts, prepared, name=name, source=source, version=version, started=started
    )
    return dataset, prepared, is_new
