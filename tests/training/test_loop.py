from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from ratchet.data.engines.local import PreparedDataset
from ratchet.errors import InvalidArgument
from ratchet.training.contract import ObjectiveFailed, TrainingContext, running
from ratchet.training.loop import TrainConfig, evaluate, fit, read_split
from ratchet.training.models import MLPSpec, TabularMLP, mlp_spec
from ratchet.training.schedule import LearningRateSchedule
from ratchet.training.stopping import EarlyStopping, FailureRules
from ratchet.training.task import detect_task


def model_for(dataset: PreparedDataset, *, seed: int = 0, dropout: float = 0.0) -> TabularMLP:
    torch.manual_seed(seed)
    task = detect_task(dataset.train_statistics)
    return TabularMLP(mlp_spec(dataset.transform, task, hidden=(16,), dropout=dropout))


def test_fit_learns_better_than_the_class_prior(dataset: PreparedDataset) -> None:
    task = detect_task(dataset.train_statistics)
    model = model_for(dataset)
    result = fit(
        model, dataset.folder, task, config=TrainConfig(epochs=4, batch_size=64, learning_rate=3e-3)
    )
    assert result.epochs == 4
    assert result.steps == 4 * -(-dataset.rows["train"] // 64)
    # the prior's log-loss for a roughly balanced binary label is about 0.69
    assert result.metrics["validation_loss"] < 0.55
    assert result.metrics["validation_accuracy"] > 0.7


def test_every_step_uses_the_exact_warmup_rate(dataset: PreparedDataset, tmp_path: Path) -> None:
    task = detect_task(dataset.train_statistics)
    reports: list[tuple[int, dict[str, float]]] = []
    config = TrainConfig(
        epochs=1,
        batch_size=128,
        learning_rate=0.01,
        warmup_steps=10,
        start_lr=0.001,
        report_every=1,
    )
    with running(TrainingContext(model_dir=tmp_path), lambda s, m: reports.append((s, m))):
        fit(model_for(dataset), dataset.folder, task, config=config)
    rates = {step: m["learning_rate"] for step, m in reports if "learning_rate" in m}
    schedule = LearningRateSchedule(0.01, warmup_steps=10, start_lr=0.001)
    assert rates[1] == pytest.approx(0.001)
    assert rates[6] == pytest.approx(0.001 + 0.009 * 5 / 10)
    for step, rate in rates.items():
        assert rate == pytest.approx(schedule(step - 1))


def test_early_stopping_stops_and_restores_the_best_weights(dataset: PreparedDataset) -> None:
    task = detect_task(dataset.train_statistics)
    stopping = EarlyStopping(patience=1, min_delta=10.0)  # nothing after the first counts
    model = model_for(dataset)
    result = fit(
        model, dataset.folder, task, config=TrainConfig(epochs=20, batch_size=64), stopping=stopping
    )
    assert result.stopped_early
    assert result.epochs == 3  # best at epoch 1, one patient epoch, stop after the next
    assert result.best_step == result.history[0]["step"]
    assert result.metrics["validation_loss"] == pytest.approx(result.history[0]["validation_loss"])


def test_early_stopping_can_keep_the_epoch_with_the_best_validation_roc_auc(
    dataset: PreparedDataset,
) -> None:
    task = detect_task(dataset.train_statistics)
    stopping = EarlyStopping("validation_roc_auc", "max", patience=10)
    config = TrainConfig(epochs=4, batch_size=64, learning_rate=0.05)
    result = fit(model_for(dataset), dataset.folder, task, config=config, stopping=stopping)
    aucs = [epoch["validation_roc_auc"] for epoch in result.history]
    assert len(aucs) == 4 and all(0.5 < auc <= 1.0 for auc in aucs)
    assert result.metrics["validation_roc_auc"] == pytest.approx(max(aucs))
    assert result.best_step == result.history[aucs.index(max(aucs))]["step"]


def test_periodic_numeric_embeddings_are_part_of_the_architecture(
    dataset: PreparedDataset,
) -> None:
    task = detect_task(dataset.train_statistics)
    plain = mlp_spec(dataset.transform, task, hidden=(16,), numeric_frequencies=0)
    periodic = mlp_spec(dataset.transform, task, hidden=(16,))
    assert periodic.numeric_frequencies == 8 and plain.sha256 != periodic.sha256
    assert MLPSpec.from_dict(periodic.to_dict()) == periodic
    # A spec saved before the field existed is the plain model, so its weights still load.
    older = {k: v for k, v in plain.to_dict().items() if k != "numeric_frequencies"}
    assert MLPSpec.from_dict(older) == plain
    assert "numeric_embedding.frequencies" not in TabularMLP(plain).state_dict()
    model = TabularMLP(periodic)
    assert model.state_dict()["numeric_embedding.frequencies"].shape == (len(plain.numeric), 8)
    inputs, _ = read_split(dataset.folder / "validation", task, list(periodic.features))
    assert model(inputs).shape == (len(inputs["a"]), 1)
    with pytest.raises(InvalidArgument, match="numeric_frequencies"):
        MLPSpec(numeric=("a",), one_hot=(), embedding=(), numeric_frequencies=-1)


def test_a_huge_learning_rate_fails_the_objective(dataset: PreparedDataset) -> None:
    task = detect_task(dataset.train_statistics)
    with pytest.raises(ObjectiveFailed, match=r"diverged|loss is"):
        fit(
            model_for(dataset),
            dataset.folder,
            task,
            config=TrainConfig(epochs=3, batch_size=32, learning_rate=1e4),
            failure=FailureRules(divergence=3.0),
        )


def test_an_unreachable_objective_fails_within_its_budget(dataset: PreparedDataset) -> None:
    task = detect_task(dataset.train_statistics)
    with pytest.raises(ObjectiveFailed, match="not reached within"):
        fit(
            model_for(dataset),
            dataset.folder,
            task,
            config=TrainConfig(epochs=5, batch_size=64),
            stopping=EarlyStopping(patience=100),
            failure=FailureRules(objective=0.01, within_steps=50),
        )


def test_resuming_from_a_checkpoint_gives_the_same_weights(
    dataset: PreparedDataset, tmp_path: Path
) -> None:
    task = detect_task(dataset.train_statistics)
    config = TrainConfig(epochs=2, batch_size=64, checkpoint_every=7, seed=3)
    whole = model_for(dataset, seed=3, dropout=0.2)
    fit(whole, dataset.folder, task, config=config, checkpoints=tmp_path / "whole")
    # An interrupted run: stop after 20 steps (a checkpoint was written at step 14).
    first = model_for(dataset, seed=3, dropout=0.2)
    stopped = TrainConfig(epochs=2, batch_size=64, checkpoint_every=7, seed=3, max_steps=20)
    fit(first, dataset.folder, task, config=stopped, checkpoints=tmp_path / "part")
    state = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 20
    resumed = model_for(dataset, seed=99, dropout=0.2)  # other init: the checkpoint must win
    result = fit(resumed, dataset.folder, task, config=config, checkpoints=tmp_path / "part")
    assert result.steps == 2 * -(-dataset.rows["train"] // 64)
    for name, tensor in whole.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_bad_configs_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="epochs and batch_size"):
        TrainConfig(epochs=0)
    with pytest.raises(InvalidArgument, match="epochs and batch_size"):
        TrainConfig(batch_size=0)


def test_fine_tuning_that_never_helps_gives_back_its_start(dataset: PreparedDataset) -> None:
    task = detect_task(dataset.train_statistics)
    model = model_for(dataset)
    fit(model, dataset.folder, task, config=TrainConfig(epochs=2, batch_size=64))
    start = copy.deepcopy(model.state_dict())
    features = list(model.spec.features)
    before = evaluate(model, task, *read_split(dataset.folder / "validation", task, features),
                      prefix="validation")  # fmt: skip
    ruinous = TrainConfig(epochs=2, batch_size=64, learning_rate=5.0)
    kept = fit(model, dataset.folder, task, config=ruinous, stopping=EarlyStopping(patience=0),
               start_is_candidate=True)  # fmt: skip
    assert kept.best_step == 0
    assert kept.metrics["validation_loss"] == pytest.approx(before["validation_loss"])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in start.items())
    model.load_state_dict(start)
    ruined = fit(model, dataset.folder, task, config=ruinous, stopping=EarlyStopping(patience=0))
    assert ruined.metrics["validation_loss"] > before["validation_loss"]


def test_soft_targets_give_the_same_loss_as_the_labels_they_encode() -> None:
    from ratchet.training.models import loss_function
    from ratchet.training.task import Task

    outputs = torch.tensor([[0.3, -1.0, 2.0], [1.5, 0.2, -0.4]])
    labels = torch.tensor([2, 0])
    one_hot = torch.nn.functional.one_hot(labels, 3).float()
    multiclass = Task("multiclass", "y", ("a", "b", "c"))
    assert loss_function(multiclass, outputs, one_hot) == pytest.approx(
        float(loss_function(multiclass, outputs, labels))
    )
    binary = Task("binary", "y", ("no", "yes"))
    two = torch.nn.functional.one_hot(labels.clamp(max=1), 2).float()
    assert loss_function(binary, outputs, two) == pytest.approx(
        float(loss_function(binary, outputs, labels.clamp(max=1)))
    )
