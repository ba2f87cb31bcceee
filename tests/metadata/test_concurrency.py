"""Four processes opening one brand-new store at once: one migrates, and nothing is lost."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from ratchet.metadata import Kind, MetadataStore
from ratchet.metadata.series import SeriesBlock

WORKERS = 4
CONTEXTS = 50
BLOCKS = 20
POINTS = 10

# Every worker imports first, says it is ready, then waits for "go", so that the
# migration of the empty store and the first writes really do race.
WORKER = f"""
import sys, time
from pathlib import Path
from ratchet.metadata import Context, Kind, MetadataStore, PropertyType, RecordType
from ratchet.metadata.series import SeriesBlock

url, worker, barrier = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
(barrier / f"ready-{{worker}}").touch()
while not (barrier / "go").exists():
    time.sleep(0.002)
with MetadataStore(url) as store:
    # Registering the bare type first makes the workers race to add the same properties.
    store.put_type(RecordType(Kind.CONTEXT, "Run"))
    store.put_type(
        RecordType(Kind.CONTEXT, "Run", {{"worker": PropertyType.INT, "index": PropertyType.INT}})
    )
    # Every worker also declares a property of its own on the shared type.
    store.put_type(RecordType(Kind.CONTEXT, "Run", {{f"w{{worker}}": PropertyType.STRING}}))
    ids = []
    for i in range({CONTEXTS}):
        context = store.put_context(
            Context(
                "Run",
                f"w{{worker}}-c{{i}}",
                properties={{"worker": worker, "index": i, f"w{{worker}}": "mine"}},
                custom_properties={{"score": worker + i / 100}},
            )
        )
        ids.append(context.id)
    for b in range({BLOCKS}):
        steps = range(b * {POINTS}, (b + 1) * {POINTS})
        store.write_time_series(
            [
                SeriesBlock.of(
                    ids[b], "loss", list(steps), [0.0] * {POINTS},
                    [worker * 1e6 + s for s in steps],
                )
            ]
        )
"""


def _run_workers(url: str, tmp_path: Path) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(w), str(barrier)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for w in range(WORKERS)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(barrier.glob("ready-*"))) < WORKERS and time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.01)
        (barrier / "go").touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    errors = [err.decode() for _, err in outputs]
    assert [p.returncode for p in procs] == [0] * WORKERS, "\n".join(errors)


def test_four_processes_migrate_and_write_one_new_store(store_url: str, tmp_path: Path) -> None:
    _run_workers(store_url, tmp_path)
    with MetadataStore(store_url) as store:
        run_type = store.get_type(Kind.CONTEXT, "Run")
        assert set(run_type.properties) == {"worker", "index"} | {f"w{w}" for w in range(WORKERS)}
        contexts = store.find_contexts(type="Run")
        assert len(contexts) == WORKERS * CONTEXTS
        assert sorted(c.name for c in contexts) == sorted(
            f"w{w}-c{i}" for w in range(WORKERS) for i in range(CONTEXTS)
        )
        for context in contexts:
            worker, index = context.properties["worker"], context.properties["index"]
            assert context.name == f"w{worker}-c{index}"
            assert context.properties[f"w{worker}"] == "mine"
            assert context.custom_properties == {"score": worker + index / 100}  # type: ignore[operator]
        counts = store.counts()
        assert counts["contexts"] == WORKERS * CONTEXTS
        assert counts["context_properties"] == WORKERS * CONTEXTS * 4
        assert counts["time_series"] == WORKERS * BLOCKS
        assert counts["types"] == 1

        points = 0
        for context in contexts:
            series = store.read_time_series(context.id or 0)
            index = context.properties["index"]
            if not isinstance(index, int) or index >= BLOCKS:
                assert series == {}
                continue
            worker = context.properties["worker"]
            steps = list(range(index * POINTS, (index + 1) * POINTS))
            loss: SeriesBlock = series["loss"]
            assert loss.steps.tolist() == steps
            assert loss.values.tolist() == [worker * 1e6 + s for s in steps]  # type: ignore[operator]
            assert store.last_steps(context.id or 0) == {"loss": steps[-1]}
            points += len(loss)
        assert points == WORKERS * BLOCKS * POINTS
        assert store.revision() is not None
