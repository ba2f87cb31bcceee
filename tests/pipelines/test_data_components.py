"""The data pipeline as KFP components: compiled by kfp, run by ratchet's runner.

No `from __future__ import annotations` here: kfp reads component annotations as types.
"""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from ratchet import datasets, pipelines
from ratchet.components import data as components
from ratchet.config import Config, load_config
from ratchet.metadata import MetadataStore
from ratchet.pipelines import TaskState


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(home=tmp_path / "home")


def source(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    path = tmp_path / "customers.parquet"
    pq.write_table(
        pa.table(
            {
                "id": np.arange(500),
                "age": rng.integers(18, 80, 500),
                "plan": pa.array(rng.choice(["free", "pro"], 500)),
                "churned": rng.integers(0, 2, 500),
            }
        ),
        path,
    )
    return path


def test_the_data_pipeline_compiles_to_kfp_ir(tmp_path: Path) -> None:
    output = tmp_path / "data.yaml"
    spec = pipelines.compile_pipeline(components.data_pipeline, output)
    ir = yaml.safe_load(output.read_text())
    assert ir["pipelineInfo"]["name"] == "ratchet-data"
    assert set(ir["root"]["dag"]["tasks"]) == {
        "compute-statistics",
        "reference-version",
        "validate-statistics",
        "detect-drift",
        "prepare-dataset",
        "register-dataset",
    }
    assert set(ir["root"]["outputDefinitions"]["parameters"]) == {
        "folder",
        "version",
        "anomalies",
        "drifted",
    }
    assert spec.name == "ratchet-data"


def test_the_data_pipeline_registers_versions_checked_against_the_first(
    config: Config, tmp_path: Path
) -> None:
    arguments = {"source": str(source(tmp_path)), "name": "customers", "label": "churned"}
    first = pipelines.run(components.data_pipeline, {**arguments, "key": "id"}, config=config)
    assert first.state == "SUCCEEDED", first.errors
    assert set(first.tasks.values()) == {TaskState.COMPLETE}
    # The first version is its own reference: nothing anomalous, nothing drifted.
    assert (first.outputs["anomalies"], first.outputs["drifted"]) == (0, False)
    folder = Path(first.outputs["folder"])
    assert folder.parent == config.home / "datasets" / "customers"
    with MetadataStore.from_config(config) as store:
        [dataset] = datasets.find_versions(store, "customers")
        assert dataset.sha256 == first.outputs["version"] and dataset.uri == str(folder)
        assert sum(dataset.custom_properties["splits"].values()) == 500

    # A shifted batch with a new plan: validated against the first schema, drifted from it,
    # transformed with the first version's transform (the new plan goes out of vocabulary).
    rng = np.random.default_rng(9)
    shifted = tmp_path / "shifted.parquet"
    pq.write_table(
        pa.table(
            {
                "id": np.arange(500, 900),
                "age": rng.integers(70, 99, 400),
                "plan": pa.array(rng.choice(["free", "team"], 400)),
                "churned": rng.integers(0, 2, 400),
            }
        ),
        shifted,
    )
    second = pipelines.run(
        components.data_pipeline, {**arguments, "source": str(shifted)}, config=config
    )
    assert second.state == "SUCCEEDED", second.errors
    assert second.outputs["drifted"] is True and second.outputs["anomalies"] >= 1
    new = Path(second.outputs["folder"])
    assert (new / "transform.json").read_text() == (folder / "transform.json").read_text()
    with MetadataStore.from_config(config) as store:
        assert len(datasets.find_versions(store, "customers")) == 2

    # The same data again is the same version: found, not registered twice.
    again = pipelines.run(
        components.data_pipeline, {**arguments, "source": str(shifted)}, config=config
    )
    assert again.outputs["version"] == second.outputs["version"]
    with MetadataStore.from_config(config) as store:
        assert len(datasets.find_versions(store, "customers")) == 2


def test_read_prepared_reads_back_what_the_engine_wrote(tmp_path: Path) -> None:
    from ratchet.data.engines.local import prepare_dataset, read_prepared

    written = prepare_dataset(str(source(tmp_path)), tmp_path / "ds", label="churned", key="id")
    read = read_prepared(tmp_path / "ds")
    assert read.statistics == written.statistics and read.transform == written.transform
    assert dict(read.rows) == dict(written.rows)
    assert read.schema == written.schema and read.quarantine.count == 0
    assert {k: set(v) for k, v in read.shards.items()} == {
        k: set(v) for k, v in written.shards.items()
    }


def test_drift_component_between_two_statistics(config: Config, tmp_path: Path) -> None:
    from kfp import dsl

    @dsl.pipeline(name="drift-check")
    def drift_check(reference: str, current: str) -> bool:
        old = components.compute_statistics(source=reference, label="")
        new = components.compute_statistics(source=current, label="")
        return components.detect_drift(
            reference=old.outputs["statistics"], current=new.outputs["statistics"]
        ).outputs["Output"]

    same = str(source(tmp_path))
    shifted = tmp_path / "shifted.parquet"
    table = pq.read_table(same)
    pq.write_table(table.set_column(1, "age", pa.array(np.full(500, 99))), shifted)
    run = pipelines.run(drift_check, {"reference": same, "current": str(shifted)}, config=config)
    assert run.state == "SUCCEEDED", run.errors
    assert run.outputs == {"Output": True}
    with MetadataStore.from_config(config) as store:
        reports = [
            a
            for a in store.find_artifacts(type="system.Artifact")
            if "drifted" in a.custom_properties["metadata"]
        ]
    assert len(reports) == 1
    report = json.loads(Path(reports[0].uri).read_text())
    assert report["drifted"] is True
