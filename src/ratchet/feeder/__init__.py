"""The model feeder: batches from a dataset's shards, steered by training while it runs.

    feeder = Feeder("datasets/adult", batch_size=256, seed=0, policies=[AdaptivePrefetch()])
    batches = iter(feeder)
    batch = next(batches)
    batch = batches.send({"batch_size": 512})  # applies to this very batch

See `feeder` for the settings and signals, `policy` for the built-in policies,
`replicas` for mirrored shards and failover, and `dataset` for PyTorch.
"""

from ratchet.feeder import latency
from ratchet.feeder.control import Change, FeederControl
from ratchet.feeder.feeder import Feeder, FeederOptions, Sampling
from ratchet.feeder.plan import Partition
from ratchet.feeder.policy import (
    AdaptivePrefetch,
    LossWeightedSlices,
    NoiseScaleBatchSize,
    Observation,
    Policy,
    ScheduledBatchSize,
    ThroughputBatchSize,
    gradient_noise_scale,
)
from ratchet.feeder.replicas import ReplicaBalancer, Shard

__all__ = [
    "AdaptivePrefetch",
    "Change",
    "Feeder",
    "FeederControl",
    "FeederOptions",
    "LossWeightedSlices",
    "NoiseScaleBatchSize",
    "Observation",
    "Partition",
    "Policy",
    "ReplicaBalancer",
    "Sampling",
    "ScheduledBatchSize",
    "Shard",
    "ThroughputBatchSize",
    "gradient_noise_scale",
    "latency",
]
