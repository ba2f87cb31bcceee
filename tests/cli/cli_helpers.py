"""Helpers shared by the CLI tests: run `ratchet` in-process and check one-line errors."""

from __future__ import annotations

import sys

import pytest

from ratchet.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `ratchet ARGS` in-process; returns (exit code, stdout, stderr)."""
    old_argv = sys.argv
    sys.argv = ["ratchet", *args]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = old_argv
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, expected_code: int, fragment: str) -> None:
    assert code == expected_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert fragment in lines[0]
    assert "Traceback" not in err
