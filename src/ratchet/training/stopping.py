"""Early stopping and failure detection: when training should end, and whether it failed.

Owns `MONITORS` (what can be monitored, its direction and the tasks that have
it), `EarlyStopping` (a monitored metric, its mode, patience, `min_delta`, and
the best weights to restore) and `FailureRules` (NaN or infinite loss,
divergence past `k` times the best loss, an objective not reached within a
step budget), which raise `ObjectiveFailed` with the reason and step; the job
launcher records that as `FAILED_OBJECTIVE`. Both keep their state in a dict
so a checkpoint can carry it across a restart.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from ratchet.errors import InvalidArgument
from ratchet.training.contract import ObjectiveFailed
from ratchet.training.task import BINARY, MULTICLASS, REGRESSION, Task

#: What early stopping can monitor: each validation metric's direction and the tasks that
#: have it (`ratchet.training.loop.evaluate` computes them).
MONITORS = {
    "validation_loss": ("min", (BINARY, MULTICLASS, REGRESSION)),
    "validation_accuracy": ("max", (BINARY, MULTICLASS)),
    "validation_roc_auc": ("max", (BINARY,)),
    "validation_rmse": ("min", (REGRESSION,)),
}


def monitor_mode(monitor: str, task: Task) -> str:
    """ "min" or "max" for a monitored metric; a one-line error when `task` has no such metric."""
    if monitor not in MONITORS:
        raise InvalidArgument(f"cannot monitor {monitor!r}; choose from {', '.join(MONITORS)}")
    mode, kinds = MONITORS[monitor]
    if task.kind not in kinds:
        raise InvalidArgument(
            f"{monitor} needs a {' or '.join(kinds)} label; {task.label!r} is {task.kind}"
        )
    return mode


@dataclass
class EarlyStopping:
    monitor: str = "validation_loss"
    mode: str = "min"
    patience: int = 5
    min_delta: float = 0.0
    restore_best_weights: bool = True
    best: float | None = None
    best_step: int | None = None
    waited: int = 0
    best_weights: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise InvalidArgument(f"mode must be 'min' or 'max', got {self.mode!r}")
        if self.patience < 0 or self.min_delta < 0:
            raise InvalidArgument("patience and min_delta must be >= 0")

    def improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, metrics: dict[str, float], *, step: int, weights: dict[str, Any]) -> bool:
        """Take an evaluation; True when training should stop."""
        if self.monitor not in metrics:
            raise InvalidArgument(
                f"early stopping monitors {self.monitor!r}, which the evaluation does not give "
                f"({', '.join(metrics)})"
            )
        value = metrics[self.monitor]
        if self.improved(value):
            self.best, self.best_step, self.waited = value, step, 0
            if self.restore_best_weights:
                self.best_weights = copy.deepcopy(weights)
            return False
        self.waited += 1
        return self.waited > self.patience

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "waited": self.waited}

    def load_state(self, state: dict[str, Any], weights: dict[str, Any] | None) -> None:
        self.best, self.best_step, self.waited = state["best"], state["best_step"], state["waited"]
        self.best_weights = weights


@dataclass
class FailureRules:
    """Stop a run that cannot succeed, saying why.

    `divergence`: the loss passing `divergence` times the best loss seen fails the run.
    `objective` with `within_steps`: the monitored value must reach the objective (below
    it for mode "min") by that step.
    """

    divergence: float | None = 10.0
    objective: float | None = None
    within_steps: int | None = None
    mode: str = "min"
    best_loss: float = math.inf
    smoothed: float | None = None
    reached: bool = False

    def check_loss(self, loss: float, *, step: int) -> None:
        """Fail on a non-finite loss, or on divergence of its moving average (one noisy
        batch must not end a run)."""
        if not math.isfinite(loss):
            raise ObjectiveFailed(f"loss is {loss} at step {step}", step=step)
        self.smoothed = loss if self.smoothed is None else 0.9 * self.smoothed + 0.1 * loss
        limit = None if self.divergence is None else self.divergence * max(self.best_loss, 1e-12)
        if limit is not None and self.best_loss < math.inf and self.smoothed > limit:
            raise ObjectiveFailed(
                f"loss {self.smoothed:.4g} diverged past {self.divergence:g} x the best "
                f"{self.best_loss:.4g} at step {step}",
                step=step,
            )
        self.best_loss = min(self.best_loss, self.smoothed)

    def state(self) -> dict[str, Any]:
        return {"best_loss": self.best_loss, "smoothed": self.smoothed, "reached": self.reached}

    def load_state(self, state: dict[str, Any]) -> None:
        self.best_loss, self.smoothed = state["best_loss"], state["smoothed"]
        self.reached = state["reached"]

    def check_objective(self, value: float, *, step: int) -> None:
        if self.objective is None or self.within_steps is None or self.reached:
            return
        self.reached = value <= self.objective if self.mode == "min" else value >= self.objective
        if not self.reached and step >= self.within_steps:
            raise ObjectiveFailed(
                f"objective {self.objective:g} not reached within {self.within_steps} steps "
                f"(best so far {value:.4g})",
                step=step,
            )
