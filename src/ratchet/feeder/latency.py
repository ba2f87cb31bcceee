"""A local filesystem with added latency, as an `fsspec` protocol: slow and bursty mirrors.

`latency://MS/abs/path` reads `/abs/path` after sleeping MS milliseconds per
open; `latency://MS:SPIKE:EVERY/abs/path` adds SPIKE milliseconds for one file
in EVERY (chosen by a hash of its name, so the same files spike in every run).
Used to measure replica balancing, failover and adaptive prefetch against a
slow or stalling copy without a real remote store; the latency is in the URL,
so nothing global needs setting.
"""

from __future__ import annotations

import time
import zlib
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

PROTOCOL = "latency"


def _split(path: str) -> tuple[float, str]:
    """(seconds to sleep, local path) of a `latency://` URL."""
    spec, _, local = path.removeprefix(f"{PROTOCOL}://").partition("/")
    parts = [float(p) for p in spec.split(":")]
    delay = parts[0]
    if len(parts) == 3 and zlib.crc32(local.encode()) % int(parts[2]) == 0:
        delay += parts[1]
    return delay / 1000, "/" + local


class LatencyFileSystem(LocalFileSystem):  # type: ignore[misc]
    protocol = PROTOCOL
    root_marker = ""

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return path.removeprefix(f"{PROTOCOL}://")

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        delay, local = _split(path)
        time.sleep(delay)
        return super()._open(local, mode, **kwargs)

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return super().info(_split(path)[1], **kwargs)  # type: ignore[no-any-return]


def register() -> None:
    fsspec.register_implementation(PROTOCOL, LatencyFileSystem, clobber=True)
