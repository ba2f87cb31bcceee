"""Fixtures for training tests: one prepared dataset per session (read-only for tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from training_data import prepared

from ratchet.data.engines.local import PreparedDataset


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    return prepared(tmp_path_factory.mktemp("dataset") / "v1")


@pytest.fixture
def dataset_folder(dataset: PreparedDataset) -> Path:
    return dataset.folder
