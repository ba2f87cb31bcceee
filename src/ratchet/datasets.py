"""Recording data results in the metadata store: statistics and drift reports, with lineage.

Owns the record types of the data pipeline's results ("DatasetStatistics" and
"DriftReport" artifacts, "ComputeStatistics" and "DetectDrift" executions), the
writing of their JSON to the artifact store, and reading recorded statistics
back. The computations live in `ratchet.data`, which never touches the stores;
the commands that call this module live in `ratchet.cli.data`.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from ratchet.artifacts import ArtifactStore
from ratchet.data.drift import DriftReport
from ratchet.data.stats import DatasetStatistics
from ratchet.errors import InvalidArgument
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
