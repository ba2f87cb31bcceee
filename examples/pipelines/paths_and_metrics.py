"""InputPath/OutputPath components, and Metrics and ClassificationMetrics outputs.

After KFP's "Use Artifacts" and "Output Metrics" guides: the traditional path-based
artifact style, a parameter written through `OutputPath`, and the metrics the KFP UI draws.
"""

from kfp import dsl
from kfp.dsl import ClassificationMetrics, InputPath, Metrics, Output, OutputPath


@dsl.component(base_image="python:3.11")
def make_labels(count: int, labels: OutputPath("Dataset"), positives: OutputPath(int)):
    rows = [(i, i % 3 == 0, i % 2 == 0) for i in range(count)]
    with open(labels, "w") as f:
        for i, truth, predicted in rows:
            f.write(f"{i},{int(truth)},{int(predicted)}\n")
    with open(positives, "w") as f:
        f.write(str(sum(truth for _, truth, _ in rows)))


@dsl.component(base_image="python:3.11")
def evaluate(
    labels: InputPath("Dataset"),
    positives: int,
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
) -> float:
    pairs = [tuple(int(v) for v in line.split(",")[1:]) for line in open(labels)]
    matrix = [[0, 0], [0, 0]]
    for truth, predicted in pairs:
        matrix[truth][predicted] += 1
    accuracy = (matrix[0][0] + matrix[1][1]) / len(pairs)
    metrics.log_metric("accuracy", accuracy)
    metrics.log_metric("rows", len(pairs))
    metrics.log_metric("positives", positives)
    classification.log_confusion_matrix(["negative", "positive"], matrix)
    classification.log_roc_curve(
        fpr=[0.0, 0.5, 1.0], tpr=[0.0, 0.75, 1.0], threshold=[1.0, 0.5, 0.0]
    )
    return accuracy


@dsl.pipeline(name="paths-and-metrics-pipeline")
def paths_and_metrics_pipeline(count: int = 12) -> float:
    labels = make_labels(count=count)
    evaluated = evaluate(labels=labels.outputs["labels"], positives=labels.outputs["positives"])
    return evaluated.outputs["Output"]
