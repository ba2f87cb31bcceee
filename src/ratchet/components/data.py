"""The data pipeline's steps as KFP components, and the data pipeline itself.

Owns the components (statistics, the reference version, validation, drift,
prepare, register) and `data_pipeline`: ingest and describe a source, validate
it against the schema of the dataset's first version, measure its drift from the
newest version, split, transform (with the first version's transform, so a
model's inputs keep their shape) and export it, and register it as the next
dataset version. Ratchet's runner executes it locally and kfp's compiler turns it
into IR for Kubeflow or Vertex AI. The work is `ratchet.data`'s and
`ratchet.datasets`'; the components only move files between KFP artifacts.

On a cluster the components need an image with ratchet installed: pass it as
`RATCHET_IMAGE` when compiling. Locally they run in this environment.
"""

import os
from typing import NamedTuple

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
def reference_version(
    name: str, statistics: Input[Artifact], schema: Output[Artifact], reference: Output[Artifact]
) -> str:
    """What a new version of dataset `name` is checked against: the first version's
    schema, the newest version's statistics (for drift) and the first version's
    transform (returned as a path). The first version is its own reference."""
    import json
    import shutil
    from pathlib import Path

    from ratchet import datasets
    from ratchet.config import load_config
    from ratchet.data.schema import infer_schema
    from ratchet.data.stats import DatasetStatistics
    from ratchet.metadata import MetadataStore

    with MetadataStore.from_config(load_config()) as store:
        versions = datasets.find_versions(store, name)  # newest first
    if not versions:
        with open(statistics.path) as f:
            inferred = infer_schema(DatasetStatistics.from_dict(json.load(f)))
        with open(schema.path, "w") as f:
            f.write(inferred.to_yaml())
        shutil.copyfile(statistics.path, reference.path)
        return ""
    first, newest = Path(versions[-1].uri), Path(versions[0].uri)
    shutil.copyfile(first / "schema.yaml", schema.path)
    shutil.copyfile(newest / "statistics.json", reference.path)
    reference.metadata["version"] = str(versions[0].properties["version"])
    return str(first / "transform.json")


@dsl.component(base_image=IMAGE)
def prepare_dataset(
    source: str, label: str, key: str, transform: str, dataset: Output[Dataset]
) -> int:
    """Split, transform and export a source into the dataset folder; returns its rows.
    `transform` is a transform.json to apply (empty: fit one on the training split)."""
    from pathlib import Path

    from ratchet.data.engines.local import prepare_dataset as prepare
    from ratchet.data.transform import Transform

    given = Transform.from_json(Path(transform).read_text()) if transform else None
    prepared = prepare(source, Path(dataset.path), label=label, key=key or None, transform=given)
    dataset.metadata["splits"] = dict(prepared.rows)
    return sum(prepared.rows.values())


@dsl.component(base_image=IMAGE)
def register_dataset(
    name: str, source: str, dataset: Input[Dataset]
) -> NamedTuple("Registered", [("folder", str), ("version", str)]):  # type: ignore[valid-type]  # fmt: skip
    """The prepared folder published as a version of `name` in the dataset store (its
    content hash names it; the same data again finds the same version)."""
    import collections
    import shutil
    import time

    from ratchet import datasets
    from ratchet.artifacts import ArtifactStore
    from ratchet.config import load_config
    from ratchet.data.engines.local import read_prepared
    from ratchet.metadata import MetadataStore

    started = time.time()
    config = load_config()
    staging = config.home / "datasets" / name / f".staging-{time.time_ns()}"
    shutil.copytree(dataset.path, staging)
    with MetadataStore.from_config(config) as store:
        artifacts = ArtifactStore.from_config(config)
        recorded, prepared, _ = datasets.publish_version(
            store, artifacts, read_prepared(staging), name=name, source=source, started=started
        )
    Registered = collections.namedtuple("Registered", "folder version")
    return Registered(str(prepared.folder), str(recorded.sha256))


class DatasetVersion(NamedTuple):
    """The data pipeline's outputs: the registered version, and what checking it found."""

    folder: str  # the version's folder in the dataset store
    version: str  # its content hash
    anomalies: int  # against the first version's schema
    drifted: bool  # from the newest version before it


@dsl.pipeline(name="ratchet-data")
def data_pipeline(source: str, name: str, label: str, key: str = "") -> DatasetVersion:
    """Statistics > validation against the first version's schema > drift from the newest
    version > split, transform, export > the next registered version of `name`."""
    stats = compute_statistics(source=source, label=label)
    reference = reference_version(name=name, statistics=stats.outputs["statistics"])
    reference.set_caching_options(False)  # its answer moves with every registered version
    validated = validate_statistics(
        statistics=stats.outputs["statistics"], schema=reference.outputs["schema"]
    )
    drift = detect_drift(
        reference=reference.outputs["reference"], current=stats.outputs["statistics"]
    )
    prepared = prepare_dataset(
        source=source, label=label, key=key, transform=reference.outputs["Output"]
    )
    registered = register_dataset(name=name, source=source, dataset=prepared.outputs["dataset"])
    registered.set_caching_options(False)  # registering is recording: it always runs
    return DatasetVersion(
        registered.outputs["folder"],
        registered.outputs["version"],
        validated.outputs["Output"],
        drift.outputs["Output"],
    )
