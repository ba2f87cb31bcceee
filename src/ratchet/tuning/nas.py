"""A light architecture search: a study space over the built-in MLP's shape.

Owns `architecture_space`: layers, width, embedding size, dropout and learning
rate for `ratchet.training.tabular` (which takes `layers` and `width` as the
searchable form of `hidden`). Run it like any study; its best trial is a
baseline the custom models must beat, on the same split.
"""

from __future__ import annotations

from collections.abc import Sequence

from ratchet.tuning.space import Metric, Parameter, StudyConfig


def architecture_space(
    *,
    max_layers: int = 4,
    widths: Sequence[int] = (32, 64, 128, 256),
    embedding_dims: Sequence[int] = (4, 8, 16, 32),
    algorithm: str = "tpe",
) -> StudyConfig:
    return StudyConfig(
        parameters=(
            Parameter("layers", "integer", low=1, high=max_layers),
            Parameter("width", "discrete", values=tuple(widths)),
            Parameter("embedding_dim", "discrete", values=tuple(embedding_dims)),
            Parameter("dropout", "double", low=0.0, high=0.5),
            Parameter("learning_rate", "double", low=1e-4, high=3e-2, scale="log"),
        ),
        metrics=(Metric("validation_loss", "minimize"),),
        algorithm=algorithm,
    )
