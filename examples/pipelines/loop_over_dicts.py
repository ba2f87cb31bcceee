"""A ParallelFor over a list of dicts, reading the items' fields, with a Collected fan-in.

After the loop example of KFP's "Control Flow" guide (`item.a`, `item.b`). A field is read
as an attribute of the loop item, so it must not be one of PipelineChannel's own (`name`).
"""

from typing import Dict, List

from kfp import dsl


@dsl.component(base_image="python:3.11")
def describe(style: str, size: str) -> str:
    return f"{style}:{size}"


@dsl.component(base_image="python:3.11")
def join(parts: List[str], separator: str) -> str:
    return separator.join(parts)


@dsl.pipeline(name="loop-over-dicts-pipeline")
def loop_over_dicts_pipeline(
    shirts: List[Dict[str, str]] = [
        {"style": "tee", "size": "M"},
        {"style": "polo", "size": "L"},
    ],
) -> str:
    with dsl.ParallelFor(shirts) as shirt:
        described = describe(style=shirt.style, size=shirt.size)
    return join(parts=dsl.Collected(described.output), separator=", ").output
