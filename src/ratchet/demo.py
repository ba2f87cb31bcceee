"""`ratchet demo`: a small experiment end to end, recorded with tracking and lineage.

Owns the demo's story until the formalized pipelines take it over: a generated
dataset is stored as an artifact, a few logistic-regression runs with different
learning rates log parameters, curves (also as TensorBoard files) and metrics,
each trained model and its evaluation are artifacts linked by executions, and
the best run is picked by validation log-loss. Pure NumPy, so it needs nothing
downloaded.
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ratchet.artifacts import ArtifactStore
from ratchet.metadata import (
    Artifact,
    Execution,
    ExecutionState,
    Kind,
    MetadataStore,
    PropertyType,
    RecordType,
)
from ratchet.metadata.rows import to_datetime
from ratchet.tracking import Tracker

EXPERIMENT = "demo"
DEMO_TYPES = (
    RecordType(Kind.ARTIFACT, "Dataset", {"rows": PropertyType.INT, "features": PropertyType.INT}),
    RecordType(Kind.ARTIFACT, "Model", {"framework": PropertyType.STRING}),
    RecordType(Kind.ARTIFACT, "Metrics"),
    RecordType(Kind.EXECUTION, "Trainer", {"learning_rate": PropertyType.DOUBLE}),
    RecordType(Kind.EXECUTION, "Evaluator"),
)

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DemoResult:
    experiment: str
    runs: tuple[str, ...]
    best_run: str
    best_log_loss: float
    best_model_artifact_id: int
    metrics_artifact_id: int


def make_dataset(rows: int, features: int, seed: int) -> tuple[Array, Array]:
    """A linearly separable-ish binary problem with label noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    true_w = rng.normal(size=features)
    logits = x @ true_w + 0.5 * rng.normal(size=rows)
    y = (logits > 0).astype(np.float64)
    return x, y


def _log_loss(p: Array, y: Array) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _predict(w: Array, b: float, x: Array) -> Array:
    result: Array = 1.0 / (1.0 + np.exp(-(x @ w + b)))
    return result


def _npz_bytes(**arrays: Array) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def run_demo(
    store: MetadataStore,
    artifacts: ArtifactStore,
    *,
    run_root: Path,
    learning_rates: Sequence[float] = (0.01, 0.1, 0.5),
    epochs: int = 60,
    seed: int = 0,
    on_step: Callable[[], None] = lambda: None,
) -> DemoResult:
    """Train one run per learning rate, record everything, return the best run."""
    for record_type in DEMO_TYPES:
        store.put_type(record_type)
    x, y = make_dataset(rows=4000, features=8, seed=seed)
    split = int(len(y) * 0.8)
    x_train, y_train, x_val, y_val = x[:split], y[:split], x[split:], y[split:]
    stored_data = artifacts.put_bytes(_npz_bytes(x=x, y=y))
    found = store.find_artifacts(type="Dataset", sha256=stored_data.sha256)
    dataset = (
        found[0]
        if found
        else store.put_artifact(
            Artifact(
                "Dataset",
                uri=stored_data.uri,
                sha256=stored_data.sha256,
                properties={"rows": len(y), "features": x.shape[1]},
            )
        )
    )
    tracker = Tracker(
        store,
        EXPERIMENT,
        run_root=run_root,
        artifacts=artifacts,
        description="logistic regression over a generated dataset",
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results: list[tuple[float, str, Artifact]] = []
    try:
        for lr in learning_rates:
            name = f"{stamp}-lr{lr:g}"
            with tracker.start_run(name, tensorboard=True) as run:
                started = time.time()
                run.log_params({"learning_rate": lr, "epochs": epochs, "seed": seed})
                w, b = np.zeros(x.shape[1]), 0.0
                for epoch in range(epochs):
                    p = _predict(w, b, x_train)
                    w -= lr * (x_train.T @ (p - y_train)) / len(y_train)
                    b -= lr * float(np.mean(p - y_train))
                    p_val = _predict(w, b, x_val)
                    run.log_time_series_metrics(
                        {
                            "train_log_loss": _log_loss(p, y_train),
                            "val_log_loss": _log_loss(p_val, y_val),
                            "val_accuracy": float(np.mean((p_val > 0.5) == y_val)),
                        },
                        step=epoch,
                    )
                    on_step()
                p_val = _predict(w, b, x_val)
                val_loss = _log_loss(p_val, y_val)
                accuracy = float(np.mean((p_val > 0.5) == y_val))
                run.log_metrics({"val_log_loss": val_loss, "val_accuracy": accuracy})
                stored_model = artifacts.put_bytes(_npz_bytes(w=w, b=np.array([b])))
                model = Artifact(
                    "Model",
                    uri=stored_model.uri,
                    sha256=stored_model.sha256,
                    name=f"{EXPERIMENT}/{name}/model",
                    properties={"framework": "numpy"},
                )
                written = store.put_execution(
                    Execution(
                        "Trainer",
                        name=f"{EXPERIMENT}/{name}/train",
                        state=ExecutionState.COMPLETE,
                        properties={"learning_rate": lr},
                        start_time=to_datetime(started),
                        end_time=to_datetime(time.time()),
                    ),
                    inputs={"examples": dataset},
                    outputs={"model": model},
                    contexts=[run.context],
                )
                results.append((val_loss, name, written.outputs["model"]))
        best_loss, best_name, best_model = min(results, key=lambda r: r[0])
        report = artifacts.put_bytes(
            f'{{"best_run": "{best_name}", "val_log_loss": {best_loss}}}'.encode()
        )
        evaluation = store.put_execution(
            Execution(
                "Evaluator", name=f"{EXPERIMENT}/{stamp}/evaluate", state=ExecutionState.COMPLETE
            ),
            inputs={"model": best_model, "examples": dataset},
            outputs={
                "metrics": Artifact(
                    "Metrics",
                    uri=report.uri,
                    sha256=report.sha256,
                    custom_properties={"val_log_loss": best_loss},
                )
            },
        )
    finally:
        tracker.close()
    assert best_model.id is not None
    metrics_id = evaluation.outputs["metrics"].id
    assert metrics_id is not None
    return DemoResult(
        EXPERIMENT, tuple(r[1] for r in results), best_name, best_loss, best_model.id, metrics_id
    )


def default_run_root() -> Path:
    return Path(tempfile.gettempdir()) / "ratchet-demo-runs"
