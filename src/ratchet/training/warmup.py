"""Warmup: the first steps from random (or given) weights on a linear learning-rate ramp, cached.

Owns `warm_up`: trains a hub architecture for a number of steps or epochs while
the rate ramps linearly from `start_lr` to the target, then publishes the
weights to the hub under a cache key of (architecture hash, initial-weights
hash, dataset version, warmup config, seed) and records a `Warmup` execution
(dataset and initial weights in, warmed weights out). The same key again is a
cache hit: one metadata query, the stored weights, no training.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch

from ratchet.errors import InvalidArgument
from ratchet.metadata import Artifact, Execution, ExecutionState, Kind, RecordType
from ratchet.metadata.rows import to_datetime
from ratchet.training.hub import Hub, WeightsRef
from ratchet.training.loop import TrainConfig, fit
from ratchet.training.models import MLPSpec, TabularMLP
from ratchet.training.stopping import EarlyStopping
from ratchet.training.task import Task

WARMUP = "Warmup"


@dataclass(frozen=True)
class WarmupConfig:
    """Ramp over `steps` optimizer steps, or over `epochs` (converted with the batch size)."""

    steps: int | None = None
    epochs: int | None = None
    start_lr: float = 0.0
    learning_rate: float = 1e-3
    batch_size: int = 256

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.epochs is None):
            raise InvalidArgument("give warmup steps or epochs (one of them)")
        if (self.steps or self.epochs or 0) < 1:
            raise InvalidArgument("warmup steps or epochs must be at least 1")
        if self.start_lr < 0 or self.learning_rate <= 0 or self.batch_size < 1:
            raise InvalidArgument("warmup needs start_lr >= 0, learning_rate > 0, batch_size >= 1")

    def total_steps(self, train_rows: int) -> int:
        if self.steps is not None:
            return self.steps
        assert self.epochs is not None
        return self.epochs * -(-train_rows // self.batch_size)


@dataclass(frozen=True)
class WarmupResult:
    weights: WeightsRef
    cached: bool
    key: str


def cache_key(
    spec: MLPSpec, initial: WeightsRef | None, dataset_version: str, config: WarmupConfig, seed: int
) -> str:
    parts: dict[str, Any] = {
        "architecture": spec.sha256,
        "initial": initial.sha256 if initial is not None else "random",
        "dataset": dataset_version,
        "warmup": asdict(config),
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def warm_up(
    hub: Hub,
    spec: MLPSpec,
    dataset: Path,
    task: Task,
    *,
    dataset_version: str,
    config: WarmupConfig,
    seed: int = 0,
    initial: WeightsRef | None = None,
) -> WarmupResult:
    """Warmed weights for this (architecture, start, data, config, seed): cached or trained."""
    key = cache_key(spec, initial, dataset_version, config, seed)
    handle = f"warmup-{key[:24]}"
    found = hub.find(handle)
    if found:
        return WarmupResult(found[0], True, key)
    train_rows = sum(
        pq.ParquetFile(p).metadata.num_rows for p in (dataset / "train").glob("*.parquet")
    )
    steps = config.total_steps(train_rows)
    train = TrainConfig(
        epochs=max(1, -(-steps * config.batch_size // max(train_rows, 1))),
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=steps,
        start_lr=config.start_lr,
        max_steps=steps,
        seed=seed,
    )
    ref = train_stage(
        hub,
        spec,
        dataset,
        task,
        config=train,
        initial=initial,
        handle=handle,
        record=Stage(WARMUP, dataset_version, {"cache_key": key}),
    )
    return WarmupResult(ref, False, key)


@dataclass(frozen=True)
class Stage:
    """How a weights-producing stage is recorded: its execution type and what it read."""

    execution: str
    dataset_version: str
    properties: dict[str, Any]
    extra_inputs: tuple[tuple[str, int], ...] = ()  # (event path, artifact id)


def train_stage(
    hub: Hub,
    spec: MLPSpec,
    dataset: Path,
    task: Task,
    *,
    config: TrainConfig,
    initial: WeightsRef | None,
    handle: str,
    record: Stage,
    stopping: EarlyStopping | None = None,
) -> WeightsRef:
    """Train from `initial` (or a seeded random init), publish as `handle`, record the stage.

    With `stopping`, the published weights are its best (restored), not the last epoch's."""
    started = time.time()
    torch.manual_seed(config.seed)
    model = TabularMLP(spec)
    if initial is not None:
        model.load_state_dict(hub.load(initial)[0])
    fit(model, dataset, task, config=config, stopping=stopping)
    ref = hub.publish(
        handle, model.state_dict(), architecture=spec.to_dict(), architecture_sha256=spec.sha256
    )
    store = hub.store
    store.put_type(RecordType(Kind.EXECUTION, record.execution))
    inputs: dict[str, Artifact] = {}
    datasets = store.find_artifacts(type="Dataset", sha256=record.dataset_version)
    if datasets:
        inputs["dataset"] = datasets[0]
    if initial is not None:
        inputs["initial_weights"] = store.get_artifact(initial.artifact_id)
    for path, artifact_id in record.extra_inputs:
        inputs[path] = store.get_artifact(artifact_id)
    store.put_execution(
        Execution(
            record.execution,
            state=ExecutionState.COMPLETE,
            custom_properties={**record.properties, "dataset_version": record.dataset_version},
            start_time=to_datetime(started),
            end_time=to_datetime(time.time()),
        ),
        inputs=inputs,
        outputs={"weights": store.get_artifact(ref.artifact_id)},
    )
    return ref
