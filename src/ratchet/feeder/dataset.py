"""PyTorch adapter: a feeder as an `IterableDataset` for DataLoader workers and DDP ranks.

Owns `FeederDataset`: each `__iter__` builds a feeder for this process's place
among all consumers (rank x DataLoader worker), so shares are disjoint and
together cover every row exactly once per epoch. Use it with
`DataLoader(dataset, batch_size=None)`: the feeder batches. `set_epoch(n)` works
as on `DistributedSampler`. Feedback reaches the feeder of an in-process
iteration (`num_workers=0`, the usual DDP setup) through `dataset.feedback`;
DataLoader worker processes take the settings current when their epoch starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info

from ratchet.feeder.control import Change, positive_int
from ratchet.feeder.feeder import Feeder, FeederOptions, Sampling
from ratchet.feeder.plan import Partition
from ratchet.feeder.policy import Policy
from ratchet.feeder.sources import ShardSource


def consumer_partition() -> Partition:
    """This process's place: DDP rank and DataLoader worker folded into one index."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    worker = get_worker_info()
    workers, worker_id = (worker.num_workers, worker.id) if worker is not None else (1, 0)
    return Partition(rank * workers + worker_id, world * workers)


class FeederDataset(IterableDataset[dict[str, torch.Tensor]]):
    def __init__(
        self,
        source: ShardSource,
        *,
        batch_size: int = 256,
        seed: int = 0,
        sampling: Sampling | None = None,
        policies: Sequence[Policy] = (),
        options: FeederOptions | None = None,
    ) -> None:
        self.source, self.sampling, self.policies = source, sampling, list(policies)
        self.batch_size, self.seed = batch_size, seed
        self.options = dataclasses.replace(options or FeederOptions(), output="torch")
        self.epoch = self.options.first_epoch
        self.feeder: Feeder | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def feedback(self, feedback: Mapping[str, Any]) -> list[Change]:
        """Steer the running in-process feeder; the batch size also carries to the next epoch."""
        if self.feeder is None:
            if "batch_size" in feedback:
                self.batch_size = positive_int("batch_size", feedback["batch_size"])
            return []
        changes = self.feeder.feedback(feedback)
        self.batch_size = self.feeder.control.batch_size
        return changes

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        options = dataclasses.replace(
            self.options, partition=consumer_partition(), first_epoch=self.epoch
        )
        self.feeder = Feeder(
            self.source,
            batch_size=self.batch_size,
            seed=self.seed,
            sampling=self.sampling,
            policies=self.policies,
            options=options,
        )
        try:
            yield from self.feeder
        finally:
            self.feeder.close()
