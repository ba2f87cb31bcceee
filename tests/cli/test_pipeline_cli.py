"""`ratchet pipeline ...` end to end: run, compile, runs, show, versions, resume, mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli

EXAMPLES = Path(__file__).parents[2] / "examples" / "pipelines"


def test_run_show_versions_and_compile(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "pipeline", "run", str(EXAMPLES / "artifacts.py"), "--param", "rows=4"
    )
    assert code == 0, err
    assert "SUCCEEDED" in out and "slope 2.0 from 4 rows" in out

    code, out, _ = run_cli(capsys, "pipeline", "runs", "--json")
    [listed] = json.loads(out)
    assert code == 0 and listed["pipeline"] == "artifacts-pipeline"
    assert listed["state"] == "SUCCEEDED"

    code, out, _ = run_cli(capsys, "pipeline", "show", listed["run"], "--json")
    shown = json.loads(out)
    assert code == 0
    assert {t["task"] for t in shown["tasks"]} == {"make-data", "train", "report"}
    assert shown["run"]["arguments"] == {"rows": 4, "learning_rate": 0.1}

    code, out, _ = run_cli(
        capsys, "pipeline", "run", str(EXAMPLES / "artifacts.py"), "--param", "rows=4"
    )
    assert code == 0 and "SUCCEEDED" in out
    code, out, _ = run_cli(
        capsys,
        "pipeline",
        "show",
        json.loads(run_cli(capsys, "pipeline", "runs", "--json")[1])[0]["run"],
        "--json",
    )
    assert {t["state"] for t in json.loads(out)["tasks"]} == {"CACHED"}

    code, out, _ = run_cli(capsys, "pipeline", "versions", "artifacts-pipeline", "--json")
    [version] = json.loads(out)
    assert code == 0 and version["runs"] == 2 and len(version["version"]) == 64

    target = home.parent / "compiled.yaml"
    code, out, _ = run_cli(
        capsys, "pipeline", "compile", str(EXAMPLES / "hello.py"), "-o", str(target)
    )
    assert code == 0 and target.read_text().startswith("# PIPELINE DEFINITION")


def test_failed_run_exits_non_zero_with_the_task_traceback(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "pipeline", "run", str(EXAMPLES / "exit_handler.py"))
    assert code == 1
    assert "FAILED" in out
    assert "ValueError: the body failed on purpose" in err
    run_name = json.loads(run_cli(capsys, "pipeline", "runs", "--json")[1])[0]["run"]
    code, out, err = run_cli(capsys, "pipeline", "resume", run_name)
    assert code == 1  # the body still fails; the completed tasks are reused
    shown = json.loads(run_cli(capsys, "pipeline", "runs", "--json")[1])
    assert len(shown) == 2


@pytest.mark.parametrize(
    ("args", "exit_code", "fragment"),
    [
        (("pipeline", "run", "missing.py"), 3, "no pipeline file"),
        (("pipeline", "run", "{hello}", "--param", "x"), 2, "--param takes key=value"),
        (("pipeline", "run", "{hello}", "--param", "nobody=1"), 2, "no parameter 'nobody'"),
        (("pipeline", "run", "{artifacts}", "--param", "rows=many"), 2, "expects NUMBER_INTEGER"),
        (("pipeline", "run", "{hello}", "--pipeline", "other"), 3, "no pipeline 'other'"),
        (("pipeline", "show", "nope"), 3, "no ratchet store"),
    ],
)
def test_pipeline_mistakes_give_one_line(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    exit_code: int,
    fragment: str,
) -> None:
    resolved = [
        a.format(hello=EXAMPLES / "hello.py", artifacts=EXAMPLES / "artifacts.py") for a in args
    ]
    code, _, err = run_cli(capsys, *resolved)
    assert_one_line_error(code, err, exit_code, fragment)


SLOW = """
from kfp import dsl

@dsl.component(base_image="python:3.11")
def nap(seconds: float) -> float:
    import time
    time.sleep(seconds)
    return seconds

@dsl.pipeline(name="slow")
def slow(seconds: float = 60.0) -> float:
    first = nap(seconds=seconds)
    return nap(seconds=first.output).output
"""


def test_ctrl_c_cancels_cleanly(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import signal
    import subprocess
    import sys
    import time

    source = home.parent / "slow.py"
    source.write_text(SLOW)
    # The CLI starts with Ctrl-C's default action, whatever this worker inherited: an
    # ignored SIGINT stays ignored across exec (as in a shell's background job), and in
    # two full-suite runs something earlier in the same xdist worker had left it ignored.
    default_sigint = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "os.execvp(sys.argv[1], sys.argv[1:])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", default_sigint, "ratchet", "pipeline", "run", str(source)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(home.glob("pipelines/*/nap/task.log")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(home.glob("pipelines/*/nap/task.log")), "the first task never started"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:  # a failure here must not leave the run going into the next test
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "CANCELLED" in out
    assert "Traceback" not in err
    [listed] = json.loads(run_cli(capsys, "pipeline", "runs", "--json")[1])
    assert listed["state"] == "CANCELLED"
    shown = json.loads(run_cli(capsys, "pipeline", "show", listed["run"], "--json")[1])
    assert [t["state"] for t in shown["tasks"]] == ["CANCELED"]
