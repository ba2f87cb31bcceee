"""An exit handler that runs after its body fails, and reads how the body ended."""

from kfp import dsl


@dsl.component(base_image="python:3.11")
def fail_when(flag: bool) -> str:
    if flag:
        raise ValueError("the body failed on purpose")
    return "fine"


@dsl.component(base_image="python:3.11")
def independent() -> str:
    return "independent branch finished"


@dsl.component(base_image="python:3.11")
def after_failure(text: str) -> str:
    return text


@dsl.component(base_image="python:3.11")
def clean_up(status: dsl.PipelineTaskFinalStatus) -> str:
    return f"{status.pipeline_task_name}: {status.state}"


@dsl.pipeline(name="exit-handler-pipeline")
def exit_handler_pipeline(fail: bool = True):
    cleanup = clean_up()
    with dsl.ExitHandler(cleanup):
        body = fail_when(flag=fail)
        after_failure(text=body.output)
        independent()
