"""Parameters in, a parameter out: the smallest KFP pipeline (from KFP's getting-started guide)."""

from kfp import dsl


@dsl.component(base_image="python:3.11")
def say_hello(name: str) -> str:
    hello_text = f"Hello, {name}!"
    print(hello_text)
    return hello_text


@dsl.pipeline(name="hello-pipeline")
def hello_pipeline(recipient: str = "World") -> str:
    hello_task = say_hello(name=recipient)
    return hello_task.output
