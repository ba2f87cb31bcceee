from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ratchet.feeder.dataset import FeederDataset

ROWS = 3500


def test_dataloader_workers_share_an_epoch_without_overlap(shards: Path) -> None:
    dataset = FeederDataset(shards, batch_size=64, seed=3)
    for epoch in range(2):
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=None, num_workers=2)
        served = [int(i) for batch in loader for i in batch["id"]]
        assert sorted(served) == list(range(ROWS))
        assert all(isinstance(batch["x"], torch.Tensor) for batch in [next(iter(loader))])


def test_in_process_feedback_reaches_the_running_feeder(shards: Path) -> None:
    dataset = FeederDataset(shards, batch_size=100)
    batches = iter(DataLoader(dataset, batch_size=None))
    assert len(next(batches)["id"]) == 100
    dataset.feedback({"batch_size": 10})
    assert len(next(batches)["id"]) == 10


RANK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch.distributed as dist
    from torch.utils.data import DataLoader
    from ratchet.feeder.dataset import FeederDataset

    dist.init_process_group("gloo")
    dataset = FeederDataset(sys.argv[1], batch_size=50, seed=11)
    served = []
    for epoch in range(2):
        dataset.set_epoch(epoch)
        served.append([int(i) for b in DataLoader(dataset, batch_size=None) for i in b["id"]])
    out = os.path.join(sys.argv[2], f"rank-{dist.get_rank()}.json")
    with open(out, "w") as f:
        json.dump(served, f)
    dist.destroy_process_group()
    """
)


def test_two_ddp_ranks_under_torchrun_get_disjoint_exact_epochs(
    shards: Path, tmp_path: Path
) -> None:
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            str(script),
            str(shards),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in range(2)]
    for epoch in range(2):
        first, second = ranks[0][epoch], ranks[1][epoch]
        assert not set(first) & set(second)
        assert sorted(first + second) == list(range(ROWS))
        assert abs(len(first) - len(second)) <= 1
    assert ranks[0][0] != ranks[0][1]  # set_epoch reshuffles
