"""What the benchmark scripts share: each case in a fresh folder and a fresh interpreter.

A script runs itself with `--case NAME --json` per case, so every case starts from
the same cold state and its peak memory is its own; the case prints one result
line, which the parent reads back.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
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
    extra: Sequence[str] = (),
) -> Any:
    """Run `script --case NAME --json` in a fresh interpreter; return the case's result."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(clear_prefixes)}
    child_env.update(env)
    command = [sys.executable, str(Path(script).resolve()), "--case", name, "--json"]
    done = subprocess.run(
        command + list(extra) + (["--quick"] if quick else []),
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


def _status_kb(field: str) -> int | None:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else None


@dataclass
class Measurement:
    seconds: float = 0.0
    rss_mb: float | None = None


@contextmanager
def measured() -> Iterator[Measurement]:
    """Time the block and record how far peak RSS rose above the RSS at its start."""
    gc.collect()
    # Resets VmHWM to the current RSS; without it an earlier peak may show, an upper bound.
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    before = _status_kb("VmRSS")
    result = Measurement()
    start = time.perf_counter()
    yield result
    result.seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM")
    if before is not None and peak is not None:
        result.rss_mb = (peak - before) / 1024


def parse_arguments(
    description: str,
    cases: Iterable[str],
    argv: list[str] | None,
    *,
    quick_help: str,
    configure: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The options every benchmark script takes, plus any `configure` adds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", type=Path, help="also write the Markdown report here")
    parser.add_argument("--case", choices=sorted(cases), help="run one case in this process")
    parser.add_argument("--json", action="store_true", help="print the case's result line")
    if configure is not None:
        configure(parser)
    return parser.parse_args(argv)


def publish(report: str, out: Path | None) -> None:
    """Print the Markdown report, and write it to `out` when given."""
    print(report, end="")
    if out is not None:
        out.write_text(report)


def cpu() -> str:
    """The processor's model name (from /proc/cpuinfo where there is one), for reports."""
    name = platform.processor() or platform.machine()
    try:
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    except OSError:
        return name
    return found.group(1) if found else name
