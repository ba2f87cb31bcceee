"""Learning-rate schedules: a linear warmup ramp, then constant or cosine decay.

Owns `LearningRateSchedule`, a pure function from the optimizer step to the
rate, so a resumed run continues on exactly the same curve and a test can
assert the exact values. Warmup ramps linearly from `start_lr` at step 0 to
the target `learning_rate` at step `warmup_steps` (epochs are converted to
steps by the caller, who knows the steps per epoch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ratchet.errors import InvalidArgument

DECAYS = ("constant", "cosine")


@dataclass(frozen=True)
class LearningRateSchedule:
    learning_rate: float
    warmup_steps: int = 0
    start_lr: float = 0.0
    decay: str = "constant"
    total_steps: int | None = None  # needed by cosine decay: where it reaches zero

    def __post_init__(self) -> None:
        if not self.learning_rate > 0:
            raise InvalidArgument(f"learning_rate must be positive, got {self.learning_rate}")
        if self.warmup_steps < 0 or self.start_lr < 0:
            raise InvalidArgument("warmup_steps and start_lr must be >= 0")
        if self.decay not in DECAYS:
            raise InvalidArgument(f"decay must be one of {DECAYS}, got {self.decay!r}")
        if self.decay == "cosine" and not self.total_steps:
            raise InvalidArgument("cosine decay needs total_steps")

    def __call__(self, step: int) -> float:
        """The rate for optimizer step `step` (0-based)."""
        if step < self.warmup_steps:
            return self.start_lr + (self.learning_rate - self.start_lr) * step / self.warmup_steps
        if self.decay == "constant" or self.total_steps is None:
            return self.learning_rate
        span = max(self.total_steps - self.warmup_steps, 1)
        done = min(step - self.warmup_steps, span) / span
        return self.learning_rate * 0.5 * (1 + math.cos(math.pi * done))
