"""Fixtures for evaluation tests: small prepared datasets and real bundles trained on them.

Built once per session (training takes well under a second each) and read-only
for the tests; registries are per test, on the `store` fixture (SQLite and
PostgreSQL).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from training_data import frame, prepared

from ratchet.artifacts import ArtifactStore
from ratchet.data.engines.local import PreparedDataset, prepare_dataset
from ratchet.metadata import MetadataStore
from ratchet.registry import Registry
from ratchet.training.bundle import Bundle, load_bundle
from ratchet.training.classic import train_classic


@pytest.fixture(scope="session")
def churn(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    """Binary churn on 3000 rows, prepared (about 300 rows in the test split)."""
    return prepared(tmp_path_factory.mktemp("evaluation") / "data", rows=3000)


@pytest.fixture(scope="session")
def trained(churn: PreparedDataset) -> dict[str, Path]:
    """The dataset folder, a logistic regression and a weak (5-tree) LightGBM bundle folder."""
    root, dataset = churn.folder.parent, churn.folder
    folders = {"dataset": dataset, "logistic": root / "logistic", "lightgbm": root / "lightgbm"}
    train_classic("sklearn-logistic", {}, dataset=dataset, model_dir=folders["logistic"], threads=1)
    train_classic(
        "lightgbm", {"n_estimators": 5}, dataset=dataset, model_dir=folders["lightgbm"], threads=1
    )
    return folders


@pytest.fixture(scope="session")
def raw_test(trained: dict[str, Path]) -> pa.Table:
    """The dataset's raw test split (features and label, as they were before the transform)."""
    return pq.read_table(trained["dataset"] / "raw_test")


@pytest.fixture(scope="session")
def logistic(trained: dict[str, Path]) -> Bundle:
    return load_bundle(trained["logistic"])


@pytest.fixture(scope="session")
def lightgbm(trained: dict[str, Path]) -> Bundle:
    return load_bundle(trained["lightgbm"])


@pytest.fixture(scope="session")
def other_tasks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Bundles for a multiclass and a regression task."""
    root = tmp_path_factory.mktemp("tasks")
    base = frame(2000, seed=3)
    rng = np.random.default_rng(3)
    signal = 2 * base.a - base.b + rng.normal(scale=0.5, size=len(base))
    tables = {
        "multiclass": base.assign(churned=np.array(["low", "mid", "high"])[
            np.digitize(signal, np.quantile(signal, [0.33, 0.66]))]),
        "regression": base.assign(churned=signal + 10.0),
    }  # fmt: skip
    kinds = {"multiclass": "sklearn-logistic", "regression": "sklearn-linear"}
    found = {}
    for name, table in tables.items():
        folder = prepare_dataset(pd.DataFrame(table), root / name, label="churned", threads=1)
        train_classic(kinds[name], {}, dataset=folder.folder, model_dir=root / f"m-{name}")
        found[name] = root / f"m-{name}"
        found[f"{name}-data"] = folder.folder
    return found


@pytest.fixture
def registry(store: MetadataStore, tmp_path: Path) -> Registry:
    return Registry(store, ArtifactStore(str(tmp_path / "artifacts")))
