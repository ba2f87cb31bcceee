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

from ratchet import pipelines
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
        "infer-schema",
        "validate-statistics",
        "prepare-dataset",
    }
    assert spec.name == "ratchet-data"


def test_the_data_pipeline_runs_under_ratchet(config: Config, tmp_path: Path) -> None:
    run = pipelines.run(
        components.data_pipeline,
        {"source": str(source(tmp_path)), "label": "churned", "key": "id"},
        config=config,
    )
    assert run.state == "SUCCEEDED", run.errors
    assert run.outputs["Output"] == 500
    assert set(run.tasks.values()) == {TaskState.COMPLETE}
    with MetadataStore.from_config(config) as store:
        [dataset] = store.find_artifacts(type="system.Dataset")
        folder = Path(dataset.uri)
        assert (folder / "schema.yaml").exists() and (folder / "train").is_dir()
        assert sum(dataset.custom_properties["metadata"]["splits"].values()) == 500
        [anomalies] = [
            a
            for a in store.find_artifacts(type="system.Artifact")
            if "count" in a.custom_properties["metadata"]
        ]
        assert anomalies.custom_properties["metadata"]["count"] == 0  # validated against itself
        assert json.loads(Path(anomalies.uri).read_text()) == []
    again = pipelines.run(
        components.data_pipeline,
        {"source": str(source(tmp_path)), "label": "churned", "key": "id"},
        config=config,
    )
    assert set(again.tasks.values()) == {TaskState.CACHED}


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
