"""A pipeline used as a component of another pipeline, with retries and caching options."""

from kfp import dsl


@dsl.component(base_image="python:3.11")
def add(a: float, b: float) -> float:
    return a + b


@dsl.component(base_image="python:3.11")
def flaky(marker: str, failures: int) -> str:
    import os

    count = int(open(marker).read()) if os.path.exists(marker) else 0
    with open(marker, "w") as f:
        f.write(str(count + 1))
    if count < failures:
        raise RuntimeError(f"attempt {count + 1} fails")
    return f"succeeded on attempt {count + 1}"


@dsl.pipeline(name="inner")
def inner(a: float, b: float) -> float:
    first = add(a=a, b=b)
    return add(a=first.output, b=b).output


@dsl.pipeline(name="nested-pipeline")
def nested_pipeline(
    a: float = 1.0, b: float = 2.0, marker: str = "/tmp/flaky", failures: int = 2
) -> float:
    first = inner(a=a, b=b)
    second = inner(a=first.output, b=b)
    retried = flaky(marker=marker, failures=failures).set_retry(num_retries=3)
    retried.set_caching_options(False)
    return second.output
