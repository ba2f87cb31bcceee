"""Checkpoints: everything a run needs to continue exactly where it stopped.

Owns the checkpoint file (model and optimizer state, step and position in the
epoch, random-number state, early-stopping and failure-rule state), written to
a temporary name and renamed so a `kill -9` mid-write leaves the previous
checkpoint intact. What goes in it is the training loop's business (`loop`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ratchet.errors import CorruptedArtifact

FILE = "checkpoint.pt"


def save_checkpoint(folder: Path, state: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / FILE
    temporary = folder / f".{FILE}.{os.getpid()}.tmp"
    torch.save(state, temporary)
    with temporary.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(temporary, final)
    return final


def load_checkpoint(folder: Path) -> dict[str, Any] | None:
    """The last checkpoint in `folder`, or None when there is none."""
    path = folder / FILE
    if not path.exists():
        return None
    try:
        state: dict[str, Any] = torch.load(path, weights_only=False)
    except Exception as e:  # a checkpoint torch cannot read is unusable whatever the cause
        raise CorruptedArtifact(f"checkpoint {path} cannot be read: {e}") from e
    return state
