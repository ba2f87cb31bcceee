"""What the benchmark scripts share: each case in a fresh folder and a fresh interpreter.

A script runs itself with `--case NAME --json` per case, so every case starts from
the same cold state and its peak memory is its own; the case prints one result
line, which the parent reads back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
RESULT_PREFIX = "RESULT "


def in_fresh_folder(name: str, run: Callable[[Path], T]) -> T:
    """Run a case inside a temporary folder it also works in (no stray config is found)."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        os.chdir(tmp)
        return run(Path(tmp))


def emit(result: Any) -> None:
    """Print a case's result as the line `spawn` reads back."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def spawn(
    script: str,
    name: str,
    *,
    quick: bool,
    env: Mapping[str, str],
    clear_prefixes: tuple[str, ...],
) -> Any:
    """Run `script --case NAME --json` in a fresh interpreter; return the case's result."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(clear_prefixes)}
    child_env.update(env)
    command = [sys.executable, str(Path(script).resolve()), "--case", name, "--json"]
    done = subprocess.run(
        command + (["--quick"] if quick else []),
        env=child_env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"case {name} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    line = [x for x in done.stdout.splitlines() if x.startswith(RESULT_PREFIX)][-1]
    return json.loads(line.removeprefix(RESULT_PREFIX))


def check(what: str, got: object, expected: object) -> None:
    """Refuse a figure measured on wrong results."""
    if got != expected:
        raise RuntimeError(f"{what}: got {got!r}, expected {expected!r}")
