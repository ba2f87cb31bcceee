"""The training loop: a model, the feeder over a dataset's shards, and everything around a step.

Owns `fit`: per step a feeder batch, forward, loss, backward, the learning-rate
schedule, failure rules and a report every `report_every` steps; per epoch an
evaluation on the validation split, reported and handed to early stopping;
checkpoints every `checkpoint_every` steps, from which a restarted run continues
on exactly the same batches, random numbers and schedule (so a deterministic
run killed and resumed ends with the same weights). Under `torch.distributed`
the model is wrapped in `DistributedDataParallel`, the feeder gives each rank
its share, every rank takes the same number of steps, and only rank 0 writes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped, unused-ignore]
from torch import nn

from ratchet.errors import InvalidArgument
from ratchet.feeder import Feeder, FeederOptions, Partition, Policy
from ratchet.training.checkpoint import load_checkpoint, save_checkpoint
from ratchet.training.contract import report
from ratchet.training.models import TabularMLP, loss_function, predictions, soft_target_columns
from ratchet.training.schedule import LearningRateSchedule
from ratchet.training.stopping import EarlyStopping, FailureRules
from ratchet.training.task import BINARY, Task

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 256  # per rank: the global batch is this times the world size
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    start_lr: float = 0.0
    decay: str = "constant"
    seed: int = 0
    max_steps: int | None = None
    checkpoint_every: int | None = None
    report_every: int = 50

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise InvalidArgument("epochs and batch_size must be at least 1")


@dataclass
class FitResult:
    steps: int
    epochs: int
    metrics: dict[str, float]  # the last validation metrics (of the restored best, if any)
    stopped_early: bool = False
    best_step: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)


def read_split(folder: Path, task: Task, features: Sequence[str]) -> tuple[Tensors, torch.Tensor]:
    """A whole split as tensors (for evaluation): feature columns and encoded labels."""
    table = pq.read_table(folder, columns=[*features, task.label])
    inputs = {}
    for name in features:
        array = table[name].to_numpy()
        inputs[name] = torch.from_numpy(
            array.astype(np.float32) if array.dtype.kind == "f" else array.astype(np.int64)
        )
    labels = torch.from_numpy(task.encode(table[task.label].to_numpy(zero_copy_only=False)))
    return inputs, labels


@torch.no_grad()
def evaluate(
    model: nn.Module, task: Task, inputs: Tensors, labels: torch.Tensor, *, prefix: str
) -> dict[str, float]:
    """Loss and accuracy (classification) or RMSE (regression), in batches; for a binary
    label also ROC AUC, when the rows hold both classes (early stopping may monitor it)."""
    was_training = model.training
    model.eval()
    rows = len(labels)
    outputs = torch.cat(
        [
            model({k: v[start : start + 8192] for k, v in inputs.items()})
            for start in range(0, rows, 8192)
        ]
    )
    model.train(was_training)
    metrics = {f"{prefix}_loss": float(loss_function(task, outputs, labels))}
    predicted = predictions(task, outputs)
    if task.classification:
        metrics[f"{prefix}_accuracy"] = float((predicted.argmax(dim=1) == labels).float().mean())
        if task.kind == BINARY and 0 < int(labels.sum()) < rows:
            metrics[f"{prefix}_roc_auc"] = float(roc_auc_score(labels, predicted[:, 1]))
    else:
        metrics[f"{prefix}_rmse"] = float(torch.sqrt(((predicted - labels) ** 2).mean()))
    return metrics


class _Distributed:
    """This process's place in data-parallel training (one process: rank 0 of 1)."""

    def __init__(self) -> None:
        self.active = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.active else 0
        self.world = dist.get_world_size() if self.active else 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def fit(
    model: TabularMLP,
    dataset: Path,
    task: Task,
    *,
    config: TrainConfig,
    checkpoints: Path | None = None,
    stopping: EarlyStopping | None = None,
    failure: FailureRules | None = None,
    policies: Sequence[Policy] = (),
    start_is_candidate: bool = False,
) -> FitResult:
    """Train `model` on `dataset`'s train split, evaluating on its validation split.

    With `checkpoints`, state is saved there every `config.checkpoint_every` steps and
    at each epoch's end, and a checkpoint found there is resumed from. With
    `start_is_candidate`, early stopping also weighs the weights training starts from
    (step 0), so training that never beats them on validation gives them back.
    """
    features = list(model.spec.features)
    places = _Distributed()
    validation = read_split(dataset / "validation", task, features)
    trained: nn.Module = model
    if places.active:
        trained = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    train_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in _shards(dataset / "train"))
    # A teacher's class probabilities, when the rows carry them (distillation), are the targets.
    names = set(pq.read_schema(_shards(dataset / "train")[0]).names) if train_rows else set()
    soft = [c for c in soft_target_columns(task) if c in names] if task.classification else []
    # Every rank must take the same number of steps, or DDP's all-reduce waits forever.
    steps_per_epoch = (
        (train_rows // places.world) // config.batch_size
        if places.active
        else -(-train_rows // config.batch_size)
    )
    if steps_per_epoch < 1:
        raise InvalidArgument(
            f"the train split has {train_rows} rows: too few for a batch of {config.batch_size}"
        )
    total = config.max_steps or steps_per_epoch * config.epochs
    schedule = LearningRateSchedule(
        config.learning_rate,
        warmup_steps=config.warmup_steps,
        start_lr=config.start_lr,
        decay=config.decay,
        total_steps=total,
    )
    state = _State(step=0, epoch=0, batches_in_epoch=0, history=[])
    torch.manual_seed(config.seed)
    saved = load_checkpoint(checkpoints) if checkpoints is not None else None
    if saved is not None:
        state = _restore(saved, model, optimizer, stopping, failure)
    elif start_is_candidate and stopping is not None:
        stopping.update(
            evaluate(model, task, *validation, prefix="validation"), step=0,
            weights=model.state_dict(),
        )  # fmt: skip

    stopped_early = False
    while state.epoch < config.epochs and state.step < total and not stopped_early:
        feeder = Feeder(
            dataset / "train",
            batch_size=config.batch_size,
            seed=config.seed,
            policies=policies,
            options=FeederOptions(
                columns=(*features, task.label, *soft),
                output="torch",
                partition=Partition(places.rank, places.world),
                first_epoch=state.epoch,
                skip_rows=state.batches_in_epoch * config.batch_size,
            ),
        )
        try:
            for batch in feeder:
                if state.batches_in_epoch >= steps_per_epoch or state.step >= total:
                    break
                _step(trained, optimizer, task, batch, schedule(state.step), state, failure)
                if state.step % config.report_every == 0:
                    report(state.step, loss=state.last_loss, learning_rate=schedule(state.step - 1))
                if config.checkpoint_every and state.step % config.checkpoint_every == 0:
                    _save(checkpoints, places, model, optimizer, state, stopping, failure)
        finally:
            feeder.close()
        if state.batches_in_epoch >= steps_per_epoch:
            state.epoch, state.batches_in_epoch = state.epoch + 1, 0
        metrics = evaluate(model, task, *validation, prefix="validation")
        state.history.append({"step": float(state.step), "epoch": float(state.epoch), **metrics})
        report(state.step, **metrics)
        if failure is not None and stopping is not None:
            failure.check_objective(metrics[stopping.monitor], step=state.step)
        if stopping is not None:
            stopped_early = stopping.update(metrics, step=state.step, weights=model.state_dict())
        _save(checkpoints, places, model, optimizer, state, stopping, failure)

    if stopping is not None and stopping.restore_best_weights and stopping.best_weights:
        model.load_state_dict(stopping.best_weights)
    final = evaluate(model, task, *validation, prefix="validation")
    best_step = stopping.best_step if stopping is not None else None
    return FitResult(state.step, state.epoch, final, stopped_early, best_step, state.history)


def _shards(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.parquet"))


@dataclass
class _State:
    step: int
    epoch: int
    batches_in_epoch: int
    history: list[dict[str, float]]
    last_loss: float = float("nan")


def _step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    task: Task,
    batch: Mapping[str, Any],
    rate: float,
    state: _State,
    failure: FailureRules | None,
) -> None:
    for group in optimizer.param_groups:
        group["lr"] = rate
    soft = soft_target_columns(task) if task.classification else []
    if soft and soft[0] in batch:
        labels = torch.stack([torch.as_tensor(batch[c]).float() for c in soft], dim=1)
    else:
        labels = torch.from_numpy(task.encode(np.asarray(batch[task.label])))
    outputs = model(batch)
    loss = loss_function(task, outputs, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    optimizer.step()
    state.step += 1
    state.batches_in_epoch += 1
    state.last_loss = float(loss.detach())
    if failure is not None:
        failure.check_loss(state.last_loss, step=state.step)


def _save(
    folder: Path | None,
    places: _Distributed,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: _State,
    stopping: EarlyStopping | None,
    failure: FailureRules | None,
) -> None:
    if folder is None:
        return
    if places.rank == 0:
        save_checkpoint(
            folder,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": state.step,
                "epoch": state.epoch,
                "batches_in_epoch": state.batches_in_epoch,
                "history": state.history,
                "rng": torch.get_rng_state(),
                "stopping": None if stopping is None else stopping.state(),
                "best_weights": None if stopping is None else stopping.best_weights,
                "failure": None if failure is None else failure.state(),
            },
        )
    places.barrier()


def _restore(
    saved: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    stopping: EarlyStopping | None,
    failure: FailureRules | None,
) -> _State:
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng"])
    if stopping is not None and saved["stopping"] is not None:
        stopping.load_state(saved["stopping"], copy.deepcopy(saved["best_weights"]))
    if failure is not None and saved["failure"] is not None:
        failure.load_state(saved["failure"])
    return _State(saved["step"], saved["epoch"], saved["batches_in_epoch"], saved["history"])
