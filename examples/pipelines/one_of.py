"""dsl.OneOf: the output of whichever If/Elif/Else branch ran, as the pipeline's output.

After the `flip_coin_pipeline` of KFP's "Control Flow" guide, with the coin made a parameter.
"""

from kfp import dsl


@dsl.component(base_image="python:3.11")
def flip_three_sided_coin(seed: int) -> str:
    return ["heads", "tails", "draw"][seed % 3]


@dsl.component(base_image="python:3.11")
def print_and_return(text: str) -> str:
    print(text)
    return text


@dsl.component(base_image="python:3.11")
def announce_result(result: str) -> str:
    return f"The result is: {result}"


@dsl.pipeline(name="one-of-pipeline")
def one_of_pipeline(seed: int = 0) -> str:
    flip_coin_task = flip_three_sided_coin(seed=seed)
    with dsl.If(flip_coin_task.output == "heads"):
        t1 = print_and_return(text="Got heads!")
    with dsl.Elif(flip_coin_task.output == "tails"):
        t2 = print_and_return(text="Got tails!")
    with dsl.Else():
        t3 = print_and_return(text="Draw!")
    oneof = dsl.OneOf(t1.output, t2.output, t3.output)
    return announce_result(result=oneof).output
