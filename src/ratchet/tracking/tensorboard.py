"""TensorBoard event files for runs, so `tensorboard --logdir` shows their curves.

Owns one event file per run that asked for one, fed with the blocks the metric
buffer has just stored (so TensorBoard never shows a point the store lost).
The records are framed here (TFRecord: length, masked CRC-32C, data, masked
CRC-32C) with the C `google-crc32c`: TensorBoard's own writer checksums in pure
Python behind a bounded queue and managed ~7,000 points/s here, slower than a
training loop logs. The protobuf messages are TensorBoard's own.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import google_crc32c

from ratchet.metadata.series import SeriesBlock


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _record(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + _masked_crc(header) + data + _masked_crc(data)


class EventFile:
    """An append-only `events.out.tfevents.*` file in `logdir`."""

    def __init__(self, logdir: Path) -> None:
        from tensorboard.compat.proto import event_pb2

        self._event_pb2 = event_pb2
        logdir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        name = f"events.out.tfevents.{int(now):010d}.{socket.gethostname()}.ratchet"
        self.path = logdir / name
        self._file: BinaryIO = self.path.open("ab")
        header = event_pb2.Event(wall_time=now, file_version="brain.Event:2")
        self._file.write(_record(header.SerializeToString()))

    def write(self, block: SeriesBlock) -> None:
        event = self._event_pb2.Event()
        value = event.summary.value.add(tag=block.name)
        chunks = []
        for step, wall_time, number in zip(
            block.steps.tolist(), block.wall_times.tolist(), block.values.tolist(), strict=True
        ):
            event.step = step
            event.wall_time = wall_time
            value.simple_value = number
            chunks.append(_record(event.SerializeToString()))
        self._file.write(b"".join(chunks))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TensorBoardWriters:
    """Event files by run context id."""

    def __init__(self) -> None:
        self._files: dict[int, EventFile] = {}
        self._lock = threading.Lock()

    def open(self, context_id: int, logdir: Path) -> None:
        with self._lock:
            if context_id not in self._files:
                self._files[context_id] = EventFile(logdir)

    def write(self, blocks: Sequence[SeriesBlock]) -> None:
        """Mirror stored blocks of the runs that have a file; other blocks are ignored."""
        with self._lock:
            touched = set()
            for block in blocks:
                event_file = self._files.get(block.context_id)
                if event_file is not None:
                    event_file.write(block)
                    touched.add(block.context_id)
            for context_id in touched:
                self._files[context_id].flush()

    def close(self, context_id: int) -> None:
        with self._lock:
            event_file = self._files.pop(context_id, None)
        if event_file is not None:
            event_file.close()

    def close_all(self) -> None:
        with self._lock:
            files, self._files = list(self._files.values()), {}
        for event_file in files:
            event_file.close()
