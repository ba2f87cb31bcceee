"""A small prepared dataset with a learnable signal, for training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ratchet.data.engines.local import PreparedDataset, prepare_dataset


def frame(rows: int = 4000, *, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "a": rng.normal(size=rows),
            "b": rng.normal(size=rows),
            "color": rng.choice(["red", "green", "blue"], rows),
            "city": rng.integers(0, 120, rows).astype(str),
        }
    )
    logit = 2 * data.a - data.b + (data.color == "red") * 1.5 - 0.5
    data["churned"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return data


def prepared(folder: Path, rows: int = 4000) -> PreparedDataset:
    return prepare_dataset(frame(rows), folder, label="churned", shard_rows=1000)
