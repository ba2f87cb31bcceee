"""Fixtures for feeder tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from feeder_shards import write_shards


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    folder = tmp_path / "shards"
    write_shards(folder)
    return folder
