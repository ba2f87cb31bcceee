"""Serving bundles: transform + model + input signature in one folder; raw record in, answer out.

Owns the bundle layout (`model.json`: framework, task, features, signature and
metrics; `transform.json`; the model's own file) and `load_bundle`, which gives
the same `Bundle` whatever trained the model: PyTorch here, scikit-learn,
LightGBM and XGBoost through `ratchet.training.classic`. A bundle applies the
transform itself, so serving and batch prediction send raw records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import torch

from ratchet.data.transform import CATEGORICAL_OPS, Transform
from ratchet.errors import InvalidArgument, NotFound
from ratchet.training.models import MLPSpec, TabularMLP, predictions
from ratchet.training.task import Task

MANIFEST, TRANSFORM, TORCH_WEIGHTS = "model.json", "transform.json", "model.pt"


class Predictor(Protocol):
    def predict(self, features: Mapping[str, npt.NDArray[Any]]) -> npt.NDArray[Any]: ...


def signature(transform: Transform) -> list[dict[str, str]]:
    """The raw fields a request must carry, and their kind."""
    return [
        {"name": f.name, "type": "string" if f.op in CATEGORICAL_OPS else "number"}
        for f in transform.features
    ]


def write_manifest(
    folder: Path, *, framework: str, transform: Transform, task: Task, extra: Mapping[str, Any]
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TRANSFORM).write_text(transform.to_json())
    manifest = {
        "framework": framework,
        "task": task.to_dict(),
        "signature": {"inputs": signature(transform), "outputs": _outputs(task)},
        **extra,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def _outputs(task: Task) -> dict[str, Any]:
    if task.classification:
        return {"kind": "probabilities", "classes": list(task.classes)}
    return {"kind": "value"}


def save_torch_bundle(
    folder: Path,
    model: TabularMLP,
    *,
    transform: Transform,
    task: Task,
    metrics: Mapping[str, float],
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / TORCH_WEIGHTS)
    write_manifest(
        folder,
        framework="torch",
        transform=transform,
        task=task,
        extra={
            "architecture": model.spec.to_dict(),
            "features": list(model.spec.features),
            "file": TORCH_WEIGHTS,
            "metrics": dict(metrics),
        },
    )


class _TorchPredictor:
    def __init__(self, folder: Path, manifest: Mapping[str, Any], task: Task) -> None:
        self.model = TabularMLP(MLPSpec.from_dict(manifest["architecture"]))
        state = torch.load(folder / manifest["file"], weights_only=True)
        self.model.load_state_dict(state)
        self.model.eval()
        self.task = task

    @torch.no_grad()
    def predict(self, features: Mapping[str, npt.NDArray[Any]]) -> npt.NDArray[Any]:
        # Arrow hands out read-only arrays; torch wants writable memory.
        tensors = {
            k: torch.from_numpy(np.require(v, requirements="W")) for k, v in features.items()
        }
        return predictions(self.task, self.model(tensors)).numpy()


@dataclass
class Bundle:
    folder: Path
    framework: str
    task: Task
    transform: Transform
    manifest: dict[str, Any]
    predictor: Predictor

    @property
    def inputs(self) -> list[dict[str, str]]:
        return list(self.manifest["signature"]["inputs"])

    def predict_table(self, table: pa.Table) -> npt.NDArray[Any]:
        """Predictions for raw rows: probabilities [rows, classes] or values [rows]."""
        return self.predict_transformed(self.transform.apply(table))

    def predict_transformed(self, transformed: pa.Table) -> npt.NDArray[Any]:
        """Predictions for rows the bundle's transform has made already (a prepared split's)."""
        features = {}
        for field in self.transform.features:
            array = transformed[field.name].to_numpy()
            features[field.name] = array.astype(np.int64) if array.dtype.kind in "iu" else array
        return self.predictor.predict(features)

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> npt.NDArray[Any]:
        missing = [
            (number, f.name)
            for number, record in enumerate(records)
            for f in self.transform.features
            if f.name not in record
        ]
        if missing:
            number, name = missing[0]
            raise InvalidArgument(f"record {number} is missing field {name!r}")
        columns = {f.name: [r[f.name] for r in records] for f in self.transform.features}
        try:
            table = pa.table(columns)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InvalidArgument(f"records do not fit the signature: {e}") from e
        return self.predict_table(table)


def load_bundle(folder: Path) -> Bundle:
    path = folder / MANIFEST
    if not path.exists():
        raise NotFound(f"{folder} is not a model bundle (no {MANIFEST})")
    manifest = json.loads(path.read_text())
    task = Task.from_dict(manifest["task"])
    transform = Transform.from_json((folder / TRANSFORM).read_text())
    framework = manifest.get("framework")
    predictor: Predictor
    if framework == "torch":
        predictor = _TorchPredictor(folder, manifest, task)
    elif framework in ("sklearn", "lightgbm", "xgboost"):
        from ratchet.training.classic import load_classic

        predictor = load_classic(folder)
    elif framework in ("flaml", "constant"):
        from ratchet.baseline import load_predictor  # the AutoML baseline and its floor

        predictor = load_predictor(folder, manifest, task)
    else:
        raise InvalidArgument(f"{folder}: unknown model framework {framework!r}")
    return Bundle(folder, str(framework), task, transform, manifest, predictor)
