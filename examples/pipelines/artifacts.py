"""Artifacts between tasks: a dataset, a model, metrics and a NamedTuple output."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output


@dsl.component(base_image="python:3.11")
def make_data(rows: int, data: Output[Dataset]) -> int:
    with open(data.path, "w") as f:
        for i in range(rows):
            f.write(f"{i},{2 * i + 1}\n")
    data.metadata["rows"] = rows
    return rows


@dsl.component(base_image="python:3.11")
def train(
    data: Input[Dataset], learning_rate: float, model: Output[Model], metrics: Output[Metrics]
) -> NamedTuple("Outputs", [("slope", float), ("rows", int)]):
    import collections

    pairs = [tuple(map(float, line.split(","))) for line in open(data.path)]
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in pairs) / sum((x - mean_x) ** 2 for x in xs)
    with open(model.path, "w") as f:
        f.write(str(slope))
    model.metadata["learning_rate"] = learning_rate
    metrics.log_metric("slope", slope)
    return collections.namedtuple("Outputs", ["slope", "rows"])(slope, len(pairs))


@dsl.component(base_image="python:3.11")
def report(model: Input[Model], rows: int) -> str:
    return f"slope {open(model.path).read()} from {rows} rows"


@dsl.pipeline(name="artifacts-pipeline")
def artifacts_pipeline(rows: int = 10, learning_rate: float = 0.1) -> str:
    data = make_data(rows=rows)
    trained = train(data=data.outputs["data"], learning_rate=learning_rate)
    return report(model=trained.outputs["model"], rows=trained.outputs["rows"]).output
