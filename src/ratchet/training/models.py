"""Built-in PyTorch models for tabular data, shaped by the data transform's feature groups.

Owns `MLPSpec` (the architecture as data: inputs per feature group, hidden
widths, dropout, outputs; its hash identifies the architecture), `TabularMLP`
(numeric inputs through learned periodic embeddings, or as they are; small
vocabularies one-hot, large ones through embeddings; then an MLP) and the loss
for a task. The spec comes from `Transform.groups()`, so a model always matches
the dataset it trains on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ratchet.data.transform import EMBEDDING, NUMERIC, ONE_HOT, Transform
from ratchet.errors import InvalidArgument, NotFound
from ratchet.training.task import BINARY, MULTICLASS, Task

ARCHITECTURE = "tabular-mlp"


@dataclass(frozen=True)
class MLPSpec:
    numeric: tuple[str, ...]
    one_hot: tuple[tuple[str, int], ...]  # (feature, width)
    embedding: tuple[tuple[str, int, int], ...]  # (feature, vocabulary, dimension)
    hidden: tuple[int, ...] = (64, 64)
    dropout: float = 0.0
    outputs: int = 1
    # Learned frequencies per numeric feature (`PeriodicEmbedding`); 0 feeds the numbers as
    # they are. Specs saved before this field existed read as 0, so their weights still load.
    numeric_frequencies: int = 0

    def __post_init__(self) -> None:
        if not (self.numeric or self.one_hot or self.embedding):
            raise InvalidArgument("the model has no input features")
        if self.numeric_frequencies < 0:
            raise InvalidArgument("numeric_frequencies must be 0 (off) or more")
        if any(width < 1 for width in self.hidden) or not 0 <= self.dropout < 1:
            raise InvalidArgument("hidden widths must be >= 1 and dropout in [0, 1)")

    @property
    def features(self) -> tuple[str, ...]:
        return (
            *self.numeric,
            *(name for name, _ in self.one_hot),
            *(name for name, _, _ in self.embedding),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"architecture": ARCHITECTURE, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MLPSpec:
        if data.get("architecture") != ARCHITECTURE:
            raise InvalidArgument(f"not a {ARCHITECTURE} spec: {data.get('architecture')!r}")
        return cls(
            numeric=tuple(data["numeric"]),
            one_hot=tuple((n, int(w)) for n, w in data["one_hot"]),
            embedding=tuple((n, int(v), int(d)) for n, v, d in data["embedding"]),
            hidden=tuple(int(h) for h in data["hidden"]),
            dropout=float(data["dropout"]),
            outputs=int(data["outputs"]),
            numeric_frequencies=int(data.get("numeric_frequencies", 0)),
        )

    @property
    def sha256(self) -> str:
        """The architecture's identity: a change here means re-formalizing."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def mlp_spec(
    transform: Transform,
    task: Task,
    *,
    hidden: Sequence[int] = (64, 64),
    dropout: float = 0.0,
    embedding_dims: Mapping[str, int] | None = None,
    numeric_frequencies: int = 8,
) -> MLPSpec:
    """The MLP for a transform's feature groups; `embedding_dims` overrides the rule of thumb."""
    groups = transform.groups()
    dims = dict(embedding_dims or {})
    return MLPSpec(
        numeric=tuple(f["name"] for f in groups[NUMERIC]),
        one_hot=tuple((f["name"], f["width"]) for f in groups[ONE_HOT]),
        embedding=tuple(
            (f["name"], f["width"], dims.get(f["name"], f["dim"])) for f in groups[EMBEDDING]
        ),
        hidden=tuple(hidden),
        dropout=dropout,
        outputs=task.outputs,
        numeric_frequencies=numeric_frequencies if groups[NUMERIC] else 0,
    )


class PeriodicEmbedding(nn.Module):
    """Each numeric feature through learned sine and cosine frequencies, then a small
    linear layer with ReLU: the "PLR" embedding of Gorishniy et al. (2022, "On Embeddings
    for Numerical Features in Tabular Deep Learning"). An MLP fed a z-score alone draws
    smooth curves; trees cut sharply (a trip's distance, its hour), and distilling a
    boosted-tree teacher into the MLP stalled short of the teacher's ranking without this.
    """

    dim = 8  # each feature's output width
    sigma = 1.0  # the frequencies' initial spread, in z-score units

    def __init__(self, features: int, frequencies: int) -> None:
        super().__init__()
        self.frequencies = nn.Parameter(torch.randn(features, frequencies) * self.sigma)
        bound = (2 * frequencies) ** -0.5  # nn.Linear's initial range for this fan-in
        self.weight = nn.Parameter(
            torch.empty(features, 2 * frequencies, self.dim).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(features, self.dim).uniform_(-bound, bound))

    def forward(self, numbers: torch.Tensor) -> torch.Tensor:
        """[rows, features] -> [rows, features * dim]."""
        angles = 2 * torch.pi * self.frequencies[None] * numbers[..., None]
        waves = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
        out = torch.einsum("rfk,fkd->rfd", waves, self.weight) + self.bias
        return torch.relu(out).flatten(1)


class TabularMLP(nn.Module):
    def __init__(self, spec: MLPSpec) -> None:
        super().__init__()
        self.spec = spec
        self.embeddings = nn.ModuleDict(
            {name: nn.Embedding(vocabulary, dim) for name, vocabulary, dim in spec.embedding}
        )
        self.numeric_embedding = (
            PeriodicEmbedding(len(spec.numeric), spec.numeric_frequencies)
            if spec.numeric_frequencies
            else None
        )
        numeric_width = PeriodicEmbedding.dim if self.numeric_embedding else 1
        width = len(spec.numeric) * numeric_width + sum(w for _, w in spec.one_hot)
        width += sum(d for _, _, d in spec.embedding)
        layers: list[nn.Module] = []
        for hidden in spec.hidden:
            # Dropout is there even at 0 (a no-op) so the weights' names do not depend on
            # it: weights warmed at one dropout load into a trial at another.
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(spec.dropout)]
            width = hidden
        layers.append(nn.Linear(width, spec.outputs))
        self.body = nn.Sequential(*layers)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Logits (classification) or predictions (regression), shape [rows, outputs]."""
        try:
            parts = []
            if self.spec.numeric:
                numbers = torch.stack([batch[n].float() for n in self.spec.numeric], dim=1)
                if self.numeric_embedding is not None:
                    numbers = self.numeric_embedding(numbers)
                parts.append(numbers)
            for name, width in self.spec.one_hot:
                parts.append(F.one_hot(batch[name].long(), width).float())
            for name, _, _ in self.spec.embedding:
                parts.append(self.embeddings[name](batch[name].long()))
        except KeyError as e:
            raise NotFound(f"the batch has no feature {e.args[0]!r} the model needs") from None
        out: torch.Tensor = self.body(torch.cat(parts, dim=1))
        return out


def soft_target_columns(task: Task) -> list[str]:
    """The columns holding a teacher's class probabilities, one per class (distillation)."""
    return [f"__soft_target_{i}__" for i in range(len(task.classes))]


def loss_function(task: Task, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The task's loss against class ids, or against class probabilities ([rows, classes],
    a teacher's soft targets: they carry its ranking, which its argmax throws away)."""
    soft = labels.dim() == 2
    if task.kind == BINARY:
        return F.binary_cross_entropy_with_logits(
            outputs[:, 0], labels[:, 1].float() if soft else labels.float()
        )
    if task.kind == MULTICLASS:
        return F.cross_entropy(outputs, labels.float() if soft else labels.long())
    return F.mse_loss(outputs[:, 0], labels.float())


def predictions(task: Task, outputs: torch.Tensor) -> torch.Tensor:
    """Class probabilities [rows, classes] (binary gives two columns) or values [rows]."""
    if task.kind == BINARY:
        positive = torch.sigmoid(outputs[:, 0])
        return torch.stack([1 - positive, positive], dim=1)
    if task.kind == MULTICLASS:
        return torch.softmax(outputs, dim=1)
    return outputs[:, 0]
