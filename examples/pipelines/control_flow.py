"""Conditions and loops: dsl.If/Elif/Else on a task output, ParallelFor with a Collected fan-in."""

from typing import List

from kfp import dsl


@dsl.component(base_image="python:3.11")
def pick(value: int) -> str:
    return "heads" if value % 3 == 0 else ("tails" if value % 3 == 1 else "edge")


@dsl.component(base_image="python:3.11")
def announce(text: str) -> str:
    return text


@dsl.component(base_image="python:3.11")
def square(x: int) -> int:
    return x * x


@dsl.component(base_image="python:3.11")
def total(values: List[int]) -> int:
    return sum(values)


@dsl.pipeline(name="control-flow-pipeline")
def control_flow_pipeline(value: int = 3, items: List[int] = [1, 2, 3, 4]) -> int:
    side = pick(value=value)
    with dsl.If(side.output == "heads"):
        announce(text="it was heads")
    with dsl.Elif(side.output == "tails"):
        announce(text="it was tails")
    with dsl.Else():
        announce(text="it landed on its edge")
    with dsl.ParallelFor(items, parallelism=2) as item:
        squared = square(x=item)
    return total(values=dsl.Collected(squared.output)).output
