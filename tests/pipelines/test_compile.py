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


def _shipped_components() -> list[tuple[str, object]]:
    import importlib
    import pkgutil

    from kfp.dsl.base_component import BaseComponent

    import ratchet.components

    found = []
    for module_info in pkgutil.iter_modules(ratchet.components.__path__):
        module = importlib.import_module(f"ratchet.components.{module_info.name}")
        for attr, value in vars(module).items():
            if isinstance(value, BaseComponent):
                found.append((f"{module_info.name}.{attr}", value))
    return found


COMPONENTS = _shipped_components()


@pytest.mark.parametrize(("name", "component"), COMPONENTS, ids=[n for n, _ in COMPONENTS])
def test_every_shipped_component_compiles(name: str, component: object, tmp_path: Path) -> None:
    from kfp import compiler

    output = tmp_path / "component.yaml"
    compiler.Compiler().compile(component, str(output))  # type: ignore[arg-type]
    ir = yaml.safe_load(output.read_text())
    assert ir["root"], name
    assert ir["deploymentSpec"]["executors"], name


def test_components_are_found() -> None:
    names = {n for n, _ in COMPONENTS}
    assert {"data.compute_statistics", "data.prepare_dataset", "data.data_pipeline"} <= names
