"""The built-in tabular trainer: the MLP on a prepared dataset, under the training-script contract.

Owns `SPEC` (its hyperparameters, checked before any data is read) and
`train_tabular(**hyperparameters)`, which reads its context (`RATCHET_DATASET`,
`RATCHET_MODEL_DIR`), builds the MLP from the dataset's transform (optionally
starting from hub weights, `init_weights=`), trains it with `fit` (warmup ramp,
early stopping, failure rules, checkpoints in the model folder so a restarted
job resumes), evaluates it on the test split and writes a serving bundle into
the model folder. Run it as `python -m ratchet.training.tabular --name value ...`
(or under `torchrun`); tuning and full training run exactly this.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ratchet.data.stats import DatasetStatistics
from ratchet.data.transform import Transform
from ratchet.errors import InvalidArgument, RatchetError
from ratchet.feeder.policy import AdaptivePrefetch
from ratchet.training.bundle import save_torch_bundle
from ratchet.training.contract import (
    FAILED_OBJECTIVE,
    STOPPED,
    ObjectiveFailed,
    TrialStopped,
    context,
    parse_hyperparameters,
    record_outcome,
    report,
)
from ratchet.training.hyperparameters import Param, check_hyperparameters
from ratchet.training.loop import TrainConfig, evaluate, fit, read_split
from ratchet.training.models import TabularMLP, mlp_spec
from ratchet.training.stopping import MONITORS, EarlyStopping, FailureRules, monitor_mode
from ratchet.training.task import detect_task

SPEC = [
    Param("hidden", "int_list", [64, 64], 1, 4096),
    # The architecture search's form of `hidden`: `layers` layers of `width` units.
    Param("layers", "int", None, 1, 16),
    Param("width", "int", None, 1, 4096),
    Param("embedding_dim", "int", None, 1, 512),  # every embedding's size, over the rule of thumb
    # Learned sine/cosine frequencies per numeric feature (`PeriodicEmbedding`); 0: as is.
    Param("numeric_frequencies", "int", 8, 0, 256),
    Param("dropout", "float", 0.0, 0.0, 0.95),
    Param("learning_rate", "float", 1e-3, 1e-7, 10.0),
    Param("weight_decay", "float", 0.0, 0.0, 1.0),
    Param("batch_size", "int", 256, 1, 1 << 20),
    Param("epochs", "int", 20, 1, 100_000),
    Param("max_steps", "int", None, 1, 10**9),
    Param("warmup_steps", "int", 0, 0, 10**9),
    Param("start_lr", "float", 0.0, 0.0, 10.0),
    Param("decay", "categorical", "constant", choices=("constant", "cosine")),
    Param("seed", "int", 0, 0, 2**31 - 1),
    Param("patience", "int", 5, 0, 10_000),
    Param("min_delta", "float", 0.0, 0.0, 1e6),
    # Monitoring validation ROC AUC (binary labels) keeps the weights that rank best, which
    # is what a gate on ROC AUC compares; the loss also rewards calibration.
    Param("monitor", "categorical", "validation_loss", choices=tuple(MONITORS)),
    Param("divergence", "float", 10.0, 1.0, 1e9),
    Param("objective", "float", None),
    Param("within_steps", "int", None, 1, 10**9),
    Param("checkpoint_every", "int", None, 1, 10**9),
    Param("report_every", "int", 50, 1, 10**9),
    Param("init_weights", "text", None),
    # Torch's default of one thread per core is slow for small models on few cores.
    Param("threads", "int", None, 1, 1024),
    # The feeder's queue depth: "adaptive" deepens it while training waits for data
    # (`ratchet.feeder.AdaptivePrefetch`); what is served, and in what order, is the same.
    Param("prefetch", "categorical", "adaptive", choices=("adaptive", "fixed")),
]


def _initial_weights(reference: str) -> dict[str, torch.Tensor]:
    """Hub weights for `init_weights`: opened from the stores the environment names."""
    from ratchet.artifacts import ArtifactStore
    from ratchet.config import load_config
    from ratchet.metadata import MetadataStore
    from ratchet.training.hub import Hub

    config = load_config()
    with MetadataStore.from_config(config, create=False) as store:
        return Hub(store, ArtifactStore.from_config(config)).load(reference)[0]


def train_tabular(**hyperparameters: Any) -> dict[str, float]:
    """Train, evaluate and bundle; returns the final validation and test metrics."""
    values = check_hyperparameters(SPEC, hyperparameters)
    where = context()
    if where.dataset is None:
        raise InvalidArgument("no dataset: set RATCHET_DATASET to a prepared dataset folder")
    dataset = Path(where.dataset)
    statistics = DatasetStatistics.from_dict(
        json.loads((dataset / "train_statistics.json").read_text())
    )
    transform = Transform.from_json((dataset / "transform.json").read_text())
    task = detect_task(statistics)
    mode = monitor_mode(values["monitor"], task)
    hidden = values["hidden"]
    if values["layers"] is not None or values["width"] is not None:
        hidden = [values["width"] or 64] * (values["layers"] or 2)
    dims = None
    if values["embedding_dim"] is not None:
        dims = {f["name"]: values["embedding_dim"] for f in transform.groups()["embedding"]}
    spec = mlp_spec(
        transform, task, hidden=hidden, dropout=values["dropout"], embedding_dims=dims,
        numeric_frequencies=values["numeric_frequencies"],
    )  # fmt: skip
    if values["threads"] is not None:
        torch.set_num_threads(values["threads"])
    torch.manual_seed(values["seed"])
    model = TabularMLP(spec)
    if values["init_weights"]:
        model.load_state_dict(_initial_weights(values["init_weights"]))
    config = TrainConfig(
        epochs=values["epochs"],
        batch_size=values["batch_size"],
        learning_rate=values["learning_rate"],
        weight_decay=values["weight_decay"],
        warmup_steps=values["warmup_steps"],
        start_lr=values["start_lr"],
        decay=values["decay"],
        seed=values["seed"],
        max_steps=values["max_steps"],
        checkpoint_every=values["checkpoint_every"],
        report_every=values["report_every"],
    )
    stopping = EarlyStopping(
        monitor=values["monitor"],
        mode=mode,
        patience=values["patience"],
        min_delta=values["min_delta"],
    )
    failure = FailureRules(
        divergence=values["divergence"],
        objective=values["objective"],
        within_steps=values["within_steps"],
        mode=mode,
    )
    result = fit(
        model,
        dataset,
        task,
        config=config,
        checkpoints=where.model_dir / "checkpoints",
        stopping=stopping,
        failure=failure,
        # Fine-tuning given weights (pre-trained, a teacher's student) must not end worse
        # on validation than it started: the start is the first candidate for the best.
        start_is_candidate=bool(values["init_weights"]),
        policies=[AdaptivePrefetch()] if values["prefetch"] == "adaptive" else [],
    )
    test = evaluate(model, task, *read_split(dataset / "test", task, spec.features), prefix="test")
    metrics = {**result.metrics, **test}
    report(result.steps, **metrics)
    if os.environ.get("RANK", "0") == "0":
        save_torch_bundle(where.model_dir, model, transform=transform, task=task, metrics=metrics)
    return metrics


def main(argv: list[str] | None = None) -> int:
    """The script form: hyperparameters from the command line, one-line errors.

    Under `torchrun` (WORLD_SIZE > 1) it joins the process group first (gloo: CPU).
    """
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("gloo")
    try:
        train_tabular(**parse_hyperparameters(argv))
    except TrialStopped as e:
        record_outcome(STOPPED, str(e), step=0)
        return 0
    except ObjectiveFailed as e:
        record_outcome(FAILED_OBJECTIVE, e.reason, step=e.step)
        print(f"objective failed: {e.reason}", file=sys.stderr)
        return 3
    except RatchetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if distributed:
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
