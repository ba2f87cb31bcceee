from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from cli_helpers import assert_one_line_error, run_cli

Capsys = pytest.CaptureFixture[str]


def _register_dataset(home: Path, capsys: Capsys) -> None:
    rng = np.random.default_rng(0)
    rows = 1500
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.choice(["x", "y"], rows)})
    frame["churned"] = ((frame.a + (frame.b == "x")) > 0.5).astype(int)
    source = home.parent / "churn.csv"
    frame.to_csv(source, index=False)
    code, _, err = run_cli(capsys, "data", "prepare", str(source), "--label", "churned")
    assert code == 0, err


def test_tune_run_then_show(home: Path, capsys: Capsys) -> None:
    _register_dataset(home, capsys)
    study = {
        "study": "churn-nas",
        "trainer": "module:ratchet.training.tabular",
        "dataset": "churn",
        "fixed": {"epochs": 2, "batch_size": 128},
        "max_trials": 3,
        "parallel_trials": 2,
        "seed": 0,
        "parameters": {
            "layers": {"type": "integer", "min": 1, "max": 2},
            "width": {"type": "discrete", "values": [8, 16]},
            "learning_rate": {"type": "double", "min": 1e-3, "max": 1e-2, "scale": "log"},
        },
        "metrics": [{"name": "validation_loss", "goal": "minimize"}],
    }
    path = home.parent / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    code, out, err = run_cli(capsys, "tune", "run", str(path), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["study"] == "churn-nas"
    assert summary["hyperparameters"]["epochs"] == 2
    assert set(summary["hyperparameters"]) >= {"layers", "width", "learning_rate"}
    code, out, err = run_cli(capsys, "tune", "show", "churn-nas", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert len(shown["trials"]) == 3
    assert shown["best"] == [summary["best_trial"]]
    code, out, _ = run_cli(capsys, "tune", "show", "churn-nas")
    assert "parameter importance" in out and "best trial" in out


def test_tune_bad_input_gets_one_line(home: Path, capsys: Capsys) -> None:
    home.mkdir(parents=True)
    bad_space = home.parent / "bad.yaml"
    bad_space.write_text(
        yaml.safe_dump(
            {
                "study": "s",
                "trainer": "module:x",
                "parameters": {"lr": {"type": "double", "min": 0, "max": 1, "scale": "log"}},
            }
        )
    )
    unknown = home.parent / "unknown.yaml"
    unknown.write_text(yaml.safe_dump({"study": "s", "trainer": "t", "budget": 3}))
    broken = home.parent / "broken.yaml"
    broken.write_text("study: [unclosed")
    cases = [
        (["tune", "run", str(bad_space)], 2, "log scale needs min > 0"),
        (["tune", "run", str(unknown)], 2, "unknown key 'budget'"),
        (["tune", "run", str(broken)], 2, "not valid YAML"),
        (["tune", "run", str(home.parent / "none.yaml")], 3, "no study file"),
        (["tune", "show", "never"], 3, "no study 'never'"),
    ]
    for args, expected, fragment in cases:
        code, _, err = run_cli(capsys, *args)
        assert_one_line_error(code, err, expected, fragment)
