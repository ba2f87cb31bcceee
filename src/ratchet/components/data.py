"""The data pipeline's steps as KFP components, and the data pipeline itself.

Owns the components (statistics, schema, validation, drift, prepare) and
`data_pipeline`, which ratchet's runner executes locally and kfp's compiler
turns into IR for Kubeflow or Vertex AI. The work is `ratchet.data`'s; the
components only move files between KFP artifacts.

On a cluster the components need an image with ratchet installed: pass it as
`RATCHET_IMAGE` when compiling. Locally they run in this environment.
"""

import os

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

#: The image a cluster runs the components in; it must have ratchet installed.
IMAGE = os.environ.get("RATCHET_IMAGE", "python:3.11")


@dsl.component(base_image=IMAGE)
def compute_statistics(source: str, label: str, statistics: Output[Artifact]) -> int:
    """Statistics of a data source (CSV, Parquet, a folder or a glob)."""
    import json

    from ratchet.data.io import open_source
    from ratchet.data.stats import compute_statistics as compute

    stats = compute(open_source(source).batches(), label=label or None)
    with open(statistics.path, "w") as f:
        json.dump(stats.to_dict(), f)
    statistics.metadata["rows"] = stats.rows
    return stats.rows


@dsl.component(base_image=IMAGE)
def infer_schema(statistics: Input[Artifact], schema: Output[Artifact]) -> str:
    """A schema inferred from statistics, as YAML; returns its version."""
    import json

    from ratchet.data.schema import infer_schema as infer
    from ratchet.data.stats import DatasetStatistics

    with open(statistics.path) as f:
        inferred = infer(DatasetStatistics.from_dict(json.load(f)))
    with open(schema.path, "w") as f:
        f.write(inferred.to_yaml())
    schema.metadata["version"] = inferred.version
    return inferred.version


@dsl.component(base_image=IMAGE)
def validate_statistics(
    statistics: Input[Artifact], schema: Input[Artifact], anomalies: Output[Artifact]
) -> int:
    """Anomalies of the statistics against the schema, as JSON; returns how many."""
    import json
    from dataclasses import asdict

    from ratchet.data.schema import Schema, validate
    from ratchet.data.stats import DatasetStatistics

    with open(statistics.path) as f:
        stats = DatasetStatistics.from_dict(json.load(f))
    with open(schema.path) as f:
        found = validate(stats, Schema.from_yaml(f.read()))
    with open(anomalies.path, "w") as f:
        json.dump([asdict(a) for a in found], f)
    anomalies.metadata["count"] = len(found)
    return len(found)


@dsl.component(base_image=IMAGE)
def detect_drift(
    reference: Input[Artifact], current: Input[Artifact], report: Output[Artifact]
) -> bool:
    """Drift of the current statistics from the reference ones; returns whether it drifted."""
    import json
    import math

    from ratchet.data.drift import compare
    from ratchet.data.stats import DatasetStatistics

    def load(artifact: Input[Artifact]) -> DatasetStatistics:
        with open(artifact.path) as f:
            return DatasetStatistics.from_dict(json.load(f))

    result = compare(load(reference), load(current))
    features = [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in f.items()}
        for f in result.to_dict()["features"]
    ]
    with open(report.path, "w") as f:
        json.dump({"drifted": result.drifted, "features": features}, f)
    report.metadata["drifted"] = result.drifted
    return result.drifted


@dsl.component(base_image=IMAGE)
def prepare_dataset(source: str, label: str, key: str, dataset: Output[Dataset]) -> int:
    """Split, transform and export a source into the dataset folder; returns its rows."""
    from pathlib import Path

    from ratchet.data.engines.local import prepare_dataset as prepare

    prepared = prepare(source, Path(dataset.path), label=label, key=key or None)
    dataset.metadata["splits"] = dict(prepared.rows)
    return sum(prepared.rows.values())


@dsl.pipeline(name="ratchet-data")
def data_pipeline(source: str, label: str, key: str = "") -> int:
    """Statistics, schema, validation, then split, transform and export."""
    stats = compute_statistics(source=source, label=label)
    schema = infer_schema(statistics=stats.outputs["statistics"])
    validate_statistics(statistics=stats.outputs["statistics"], schema=schema.outputs["schema"])
    prepared = prepare_dataset(source=source, label=label, key=key).after(schema)
    return prepared.outputs["Output"]
