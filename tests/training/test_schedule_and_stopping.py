from __future__ import annotations

import math

import pytest

from ratchet.errors import InvalidArgument
from ratchet.training.contract import ObjectiveFailed
from ratchet.training.schedule import LearningRateSchedule
from ratchet.training.stopping import EarlyStopping, FailureRules, monitor_mode
from ratchet.training.task import BINARY, REGRESSION, Task


def test_warmup_ramps_linearly_from_start_lr_to_the_target() -> None:
    schedule = LearningRateSchedule(0.1, warmup_steps=4, start_lr=0.02)
    assert [schedule(step) for step in range(7)] == pytest.approx(
        [0.02, 0.04, 0.06, 0.08, 0.1, 0.1, 0.1]
    )


def test_cosine_decay_after_warmup_reaches_zero_at_the_end() -> None:
    schedule = LearningRateSchedule(1.0, warmup_steps=2, decay="cosine", total_steps=12)
    assert schedule(2) == pytest.approx(1.0)
    assert schedule(7) == pytest.approx(0.5)
    assert schedule(12) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.0},
        {"learning_rate": 0.1, "warmup_steps": -1},
        {"learning_rate": 0.1, "decay": "cosine"},
        {"learning_rate": 0.1, "decay": "step"},
    ],
)
def test_bad_schedules_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        LearningRateSchedule(**kwargs)  # type: ignore[arg-type]


def test_early_stopping_waits_patience_evaluations_past_min_delta() -> None:
    stopping = EarlyStopping(patience=2, min_delta=0.01)
    losses = [1.0, 0.8, 0.795, 0.79, 0.85]
    stops = [
        stopping.update({"validation_loss": loss}, step=i, weights={"w": i})
        for i, loss in enumerate(losses)
    ]
    assert stops == [False, False, False, False, True]
    assert stopping.best == 0.8 and stopping.best_step == 1
    assert stopping.best_weights == {"w": 1}


def test_early_stopping_in_max_mode_and_unknown_metric() -> None:
    stopping = EarlyStopping(monitor="validation_accuracy", mode="max", patience=0)
    assert not stopping.update({"validation_accuracy": 0.7}, step=1, weights={})
    assert stopping.update({"validation_accuracy": 0.6}, step=2, weights={})
    with pytest.raises(InvalidArgument, match="monitors 'validation_accuracy'"):
        stopping.update({"validation_loss": 1.0}, step=3, weights={})


def test_failure_rules_nan_divergence_and_missed_objective() -> None:
    with pytest.raises(ObjectiveFailed, match="loss is nan"):
        FailureRules().check_loss(math.nan, step=3)
    with pytest.raises(ObjectiveFailed, match="loss is inf"):
        FailureRules().check_loss(math.inf, step=3)
    rules = FailureRules(divergence=3.0)
    rules.check_loss(1.0, step=1)
    rules.check_loss(5.0, step=2)  # one noisy batch is not divergence
    rules.check_loss(1.0, step=3)
    with pytest.raises(ObjectiveFailed, match="diverged") as raised:
        for step in range(4, 100):
            rules.check_loss(5.0, step=step)
    assert raised.value.step > 5
    objective = FailureRules(objective=0.5, within_steps=100)
    objective.check_objective(0.9, step=50)
    with pytest.raises(ObjectiveFailed, match=r"objective 0\.5 not reached within 100 steps"):
        objective.check_objective(0.8, step=100)
    reached = FailureRules(objective=0.5, within_steps=100)
    reached.check_objective(0.4, step=50)
    reached.check_objective(0.9, step=150)  # once reached, it stays reached


def test_each_monitor_has_its_direction_and_the_tasks_that_give_it() -> None:
    binary = Task(BINARY, "tip", ("no", "yes"))
    regression = Task(REGRESSION, "fare", ())
    assert monitor_mode("validation_loss", regression) == "min"
    assert monitor_mode("validation_roc_auc", binary) == "max"
    assert monitor_mode("validation_accuracy", binary) == "max"
    with pytest.raises(InvalidArgument, match="validation_roc_auc needs a binary label; 'fare'"):
        monitor_mode("validation_roc_auc", regression)
    with pytest.raises(InvalidArgument, match="cannot monitor 'validation_f1'"):
        monitor_mode("validation_f1", binary)
