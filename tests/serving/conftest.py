"""Fixtures for serving tests: small real bundles (LightGBM, the MLP, a regression), trained once.

`client` makes FastAPI's TestClient; it is imported here alone because Starlette warns
(an error under this project's warning filters) that plain `httpx` is deprecated in
favour of `httpx2`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning
from training_data import frame, prepared

from ratchet.data.engines.local import prepare_dataset
from ratchet.training.bundle import Bundle, load_bundle
from ratchet.training.classic import train_classic
from ratchet.training.contract import TrainingContext
from ratchet.training.jobs import run_job
from ratchet.training.tabular import train_tabular

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


@pytest.fixture
def client() -> Iterator[Callable[[FastAPI], Any]]:
    """A TestClient for an app, closed after the test."""
    opened: list[TestClient] = []

    def make(app: FastAPI) -> TestClient:
        opened.append(TestClient(app))
        return opened[-1]

    yield make
    for one in opened:
        one.close()


@pytest.fixture(scope="session")
def dataset_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepared(tmp_path_factory.mktemp("serving-data") / "v1", rows=2000).folder


@pytest.fixture(scope="session")
def lightgbm_dir(dataset_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bundles") / "lightgbm"
    train_classic(
        "lightgbm", {"n_estimators": 20}, dataset=dataset_folder, model_dir=folder, threads=1
    )
    return folder


@pytest.fixture(scope="session")
def mlp_dir(dataset_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bundles") / "mlp"
    result = run_job(
        train_tabular,
        {"hidden": [8], "epochs": 1, "batch_size": 128},
        context=TrainingContext(model_dir=folder, dataset=str(dataset_folder)),
        launcher="inprocess",
    )
    assert result.state == "COMPLETE", result.reason
    return folder


@pytest.fixture(scope="session")
def regression_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("regression")
    data = frame(1000).drop(columns=["churned"])
    dataset = prepare_dataset(data, root / "data", label="a", shard_rows=500).folder
    train_classic(
        "lightgbm", {"n_estimators": 10}, dataset=dataset, model_dir=root / "m", threads=1
    )
    return root / "m"


@pytest.fixture(scope="session")
def lightgbm(lightgbm_dir: Path) -> Bundle:
    return load_bundle(lightgbm_dir)


@pytest.fixture(scope="session")
def mlp(mlp_dir: Path) -> Bundle:
    return load_bundle(mlp_dir)


@pytest.fixture(scope="session")
def regression(regression_dir: Path) -> Bundle:
    return load_bundle(regression_dir)


@pytest.fixture(scope="session")
def raw_rows(dataset_folder: Path) -> list[dict[str, object]]:
    """Raw test rows without the label, as a client would send them."""
    table = pq.read_table(dataset_folder / "raw_test").drop(["churned"])
    return table.slice(0, 50).to_pylist()
