"""Every pipeline ratchet ships compiles with kfp's own compiler to IR that ratchet loads."""

from pathlib import Path

import pytest
import yaml
from pipeline_examples import EXAMPLES

from ratchet import pipelines
from ratchet.pipelines.spec import find_pipelines

SHIPPED = [
    (source, name) for source in sorted(EXAMPLES.glob("*.py")) for name in find_pipelines(source)
]


@pytest.mark.parametrize(("source", "name"), SHIPPED, ids=[f"{s.stem}:{n}" for s, n in SHIPPED])
def test_shipped_pipelines_compile_to_kfp_ir(source: Path, name: str, tmp_path: Path) -> None:
    output = tmp_path / f"{name}.yaml"
    spec = pipelines.compile_pipeline(source, output, name=name)
    ir = yaml.safe_load(output.read_text())
    assert ir["pipelineInfo"]["name"] == spec.name
    assert ir["schemaVersion"].startswith("2.")
    assert ir["root"]["dag"]["tasks"]
    assert pipelines.load(output).version == spec.version


def test_every_example_file_is_covered() -> None:
    assert {s.stem for s, _ in SHIPPED} == {p.stem for p in EXAMPLES.glob("*.py")}
