"""The data pipeline: readers, statistics, schema, validation, drift, split, transform, export.

Every algorithm is a pure function over Arrow record batches with a mergeable
partial state (compute per shard, merge, finish); the engines only orchestrate.
This package never touches the metadata store: recording is the caller's job.
"""
