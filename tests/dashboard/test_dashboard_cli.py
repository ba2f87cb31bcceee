"""`ratchet dashboard`: serves the pages over HTTP until interrupted; bad input is one line."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from cli_helpers import assert_one_line_error, run_cli

if TYPE_CHECKING:
    from conftest import Recorded


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            proc.kill()
            pytest.fail(f"ratchet dashboard printed nothing in {timeout} s")
    return proc.stdout.readline()


def test_ratchet_dashboard_serves_the_pages(recorded: Recorded) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RATCHET_")}
    proc = subprocess.Popen(
        ["ratchet", "--home", str(recorded.config.home), "dashboard", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = _first_line(proc, timeout=90)
        found = re.search(r"dashboard on (http://127\.0\.0\.1:\d+)", line)
        assert found, line
        with httpx.Client(base_url=found.group(1), timeout=10) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    page = http.get("/")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the server never answered"
                    time.sleep(0.05)
            assert page.status_code == 200 and '<a href="/models/churn">churn</a>' in page.text
            assert http.get("/api/models/churn").json()["name"] == "churn"
            assert http.get("/models/nope").status_code == 404
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_a_taken_port_or_a_missing_store_is_one_line(
    capsys: pytest.CaptureFixture[str], recorded: Recorded, home: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, _, stderr = run_cli(
            capsys, "--home", str(recorded.config.home), "dashboard", "--port", port
        )
    assert_one_line_error(code, stderr, 5, f"cannot listen on 127.0.0.1:{port}")
    code, _, stderr = run_cli(capsys, "dashboard")
    assert_one_line_error(code, stderr, 3, f"no ratchet store at {home}")
    code, _, stderr = run_cli(
        capsys, "--home", str(recorded.config.home), "dashboard", "--port", "70000"
    )
    assert_one_line_error(code, stderr, 2, "--port must be between 0 and 65535")
