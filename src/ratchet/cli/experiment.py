"""`ratchet experiment CONFIG.yaml`: the experimentation flow as code, end to end and recorded.

Owns reading the experiment file (where the data is, the model's name and label,
and the formalization settings beside them) and printing the custom model
against the AutoML baseline on the same test rows. The flow itself is one
formalization pass run as an experiment (`run_pass(..., experiment=True)`):
the data pipeline, the AutoML baseline, warmup (cached), synthetic pre-training,
a study, full training with early stopping and TensorBoard, evaluation and the
gate into the registry — the same pipelines the controller runs later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ratchet.cli.formalize import read_mapping
from ratchet.cli.models import compare_command
from ratchet.cli.output import console
from ratchet.config import Config
from ratchet.errors import InvalidArgument
from ratchet.formalize.passes import Settings, run_pass

REQUIRED = ("source", "name", "label")


def read_experiment(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the required fields, the settings) of an experiment file; one-line errors."""
    loaded = read_mapping(path, "experiment")
    missing = [key for key in REQUIRED if not loaded.get(key)]
    if missing:
        raise InvalidArgument(f"{path} needs {missing[0]!r} (it needs {', '.join(REQUIRED)})")
    required = {key: str(loaded.pop(key)) for key in REQUIRED}
    source = Path(required["source"])
    if not source.is_absolute():  # relative to the experiment file, as a user writes it
        required["source"] = str(path.parent / source)
    return required, loaded


def experiment_command(
    ctx: typer.Context,
    config_file: Annotated[
        Path, typer.Argument(help="YAML: source, name, label, and formalization settings.")
    ],
) -> None:
    """Run the experimentation flow end to end and compare the custom model to the baseline."""
    config: Config = ctx.obj
    required, values = read_experiment(config_file)
    settings = Settings.from_dict(required["name"], required["label"], values)
    result = run_pass(config, required["source"], settings, say=console().print, experiment=True)
    if result.candidate is None:
        console().print("no candidate was trained; nothing to compare")
        return
    console().print("the custom model against the AutoML baseline, on the same test rows:")
    compare_command(
        ctx, str(result.candidate), f"{settings.name}-baseline:baseline",
        data=str(result.dataset.uri), slices=None, as_json=False,
    )  # fmt: skip
