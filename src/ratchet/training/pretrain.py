"""Synthetic pre-training: after warmup, train on rows drawn from the dataset's statistics.

Owns `pretrain`: it samples raw rows with a `SyntheticGenerator` (marginals and,
optionally, a copula from the training statistics), labels them with a teacher
(e.g. the AutoML baseline's predict) or a rule, transforms them with the
dataset's own transform, trains the warmed weights on them (evaluating on the
real validation split, whose best epoch it keeps) and publishes the result to
the hub, cached by its inputs, with a `Pretrain` execution whose input is the
warmup's output: lineage reads warmup -> pretrain -> trials.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ratchet.data.export import write_shards
from ratchet.data.transform import Transform
from ratchet.errors import InvalidArgument
from ratchet.training.hub import Hub, WeightsRef
from ratchet.training.loop import TrainConfig
from ratchet.training.models import MLPSpec, soft_target_columns
from ratchet.training.stopping import EarlyStopping, monitor_mode
from ratchet.training.synthetic import SyntheticGenerator
from ratchet.training.task import BINARY, Task
from ratchet.training.warmup import Stage, train_stage

PRETRAIN = "Pretrain"


@dataclass(frozen=True)
class PretrainConfig:
    rows: int = 50_000  # synthetic rows
    epochs: int = 2
    batch_size: int = 256
    learning_rate: float = 1e-3
    # Rows drawn (with replacement) from the dataset's own train split beside the synthetic
    # ones, when a teacher gives soft targets: synthetic rows cover the feature space, but
    # only real rows show the teacher where the data actually is.
    real_rows: int = 0

    def __post_init__(self) -> None:
        if self.rows < 1 or self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise InvalidArgument("pre-training needs positive rows, epochs, batch_size and rate")
        if self.real_rows < 0:
            raise InvalidArgument("pre-training's real_rows must be 0 or more")


def pretrain(
    hub: Hub,
    spec: MLPSpec,
    dataset: Path,
    task: Task,
    *,
    start: WeightsRef,
    generator: SyntheticGenerator,
    labeller_name: str,
    dataset_version: str,
    config: PretrainConfig,
    seed: int = 0,
    soft_targets: Callable[[pa.Table], Any] | None = None,
) -> WeightsRef:
    """Weights pre-trained on synthetic rows from `start`; cached by every input.

    `soft_targets` (a classifier teacher's class probabilities for transformed rows,
    e.g. `Bundle.predict_transformed`) makes the student learn the teacher's
    probabilities rather than the drawn labels: distillation, which needs far fewer
    rows to carry the teacher's ranking. With it, `config.real_rows` rows of the train
    split join the synthetic ones, with the teacher's probabilities as their targets too.

    `labeller_name` names the generator's labeller in the cache key (a teacher model's
    version, or a rule's name): the function itself cannot be hashed.
    """
    monitor = _kept_by(dataset, task)
    parts = {
        "start": start.sha256,
        "kept": f"best {monitor}",
        "dataset": dataset_version,
        "labeller": labeller_name,
        "config": asdict(config),
        "soft_targets": soft_targets is not None,
        "seed": seed,
        "architecture": spec.sha256,
    }
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    handle = f"pretrain-{key[:24]}"
    found = hub.find(handle)
    if found:
        return found[0]
    transform = Transform.from_json((dataset / "transform.json").read_text())
    rows = generator.sample(config.rows, seed=seed)
    if task.label not in rows.column_names:
        raise InvalidArgument("the generator must label its rows (give it a teacher or a rule)")
    with tempfile.TemporaryDirectory(prefix="ratchet-pretrain-") as folder:
        synthetic = Path(folder)
        transformed = transform.apply(rows)
        if soft_targets is not None and task.classification:
            transformed = _distilled(transformed, dataset, task, soft_targets, config, seed)
        write_shards([transformed], synthetic / "train")
        # Progress is judged on real rows: the dataset's own validation split.
        os.symlink((dataset / "validation").resolve(), synthetic / "validation")
        return train_stage(
            hub,
            spec,
            synthetic,
            task,
            config=TrainConfig(
                epochs=config.epochs,
                batch_size=config.batch_size,
                learning_rate=config.learning_rate,
                seed=seed,
            ),
            initial=start,
            handle=handle,
            record=Stage(PRETRAIN, dataset_version, {"cache_key": key, "labeller": labeller_name}),
            stopping=EarlyStopping(monitor, monitor_mode(monitor, task), patience=config.epochs),
        )


def _kept_by(dataset: Path, task: Task) -> str:
    """What the kept epoch is the best by: the synthetic rows' loss keeps falling after the
    student stops getting better on real ones, so a validation metric. ROC AUC for a binary
    label whose validation rows hold both classes (fewer cannot define it), else the loss."""
    if task.kind == BINARY:
        labels = pq.read_table(dataset / "validation", columns=[task.label])[task.label]
        if pc.count_distinct(labels.drop_null()).as_py() == 2:
            return "validation_roc_auc"
    return "validation_loss"


def _distilled(
    synthetic: pa.Table,
    dataset: Path,
    task: Task,
    soft_targets: Callable[[pa.Table], Any],
    config: PretrainConfig,
    seed: int,
) -> pa.Table:
    """Synthetic rows and `config.real_rows` train rows, each with the teacher's
    probabilities as soft-target columns, shuffled together."""
    rng = np.random.default_rng(seed)
    tables = [synthetic]
    if config.real_rows:
        train = pq.read_table(dataset / "train", columns=synthetic.column_names)
        drawn = train.take(rng.integers(0, train.num_rows, size=config.real_rows))
        tables.append(drawn.cast(synthetic.schema))
    rows = pa.concat_tables(tables)
    probabilities = np.asarray(soft_targets(rows), np.float32)
    for column, values in zip(soft_target_columns(task), probabilities.T, strict=True):
        rows = rows.append_column(column, pa.array(values))
    # Shuffled: the trainer reads shards in order, and batches should mix both kinds.
    return rows.take(rng.permutation(rows.num_rows))
