"""The structure the code promises: no import cycles, one table per concept, small functions,
exit codes inside the app, and a README reference that cannot drift from the schema."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from types import UnionType
from typing import Union, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from conftest import REPO

PACKAGE = REPO / "edgeseg"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _under_type_checking(tree: ast.AST) -> set[int]:
    """ids of import nodes inside ``if TYPE_CHECKING:`` (never executed: not an edge)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(inner) for inner in ast.walk(node)}
    return skipped


def _imports(path: Path) -> set[str]:
    """Every edgeseg module ``path`` imports, at module level or inside functions.

    ``from package import name`` is an edge to the module ``package.name`` when that is a
    module, else to the package (its ``__init__`` holds the name)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    skipped = _under_type_checking(tree)
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    return {name for name in found if name in MODULES and name != module}


def _unit(module: str) -> str:
    """A subpackage (edgeseg.train) or a top-level module (edgeseg.errors)."""
    return ".".join(module.split(".")[:2])


def _first_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Depth-first search for a back edge; the cycle it closes."""
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*trail[trail.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt, [*trail, nxt])):
                return cycle
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [node])):
            return cycle
    return None


def test_no_import_cycle_between_modules_counting_function_level_imports():
    graph = {module: _imports(path) for module, path in MODULES.items()}
    cycle = _first_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycle_between_subpackages_counting_function_level_imports():
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        graph.setdefault(_unit(module), set()).update(_unit(m) for m in _imports(path) if _unit(m) != _unit(module))
    cycle = _first_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_sees_a_cycle():
    assert _first_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _first_cycle({"a": {"b"}, "b": set()}) is None


def test_the_checkpoint_module_imports_no_stage():
    stages = {f"edgeseg.{name}" for name in ("train", "compress", "eval", "exporters", "bench", "build")}
    for leaf in ("checkpoint.py", "replay.py"):
        assert not {_unit(m) for m in _imports(PACKAGE / "models" / leaf)} & stages, leaf


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the end (a Typer command's long
    signature of options is declaration, not logic)."""
    body = node.body[1:] if ast.get_docstring(node) is not None and len(node.body) > 1 else node.body
    return node.end_lineno - body[0].lineno + 1


def test_no_function_in_the_package_is_longer_than_60_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _body_lines(node) > 60:
                long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({_body_lines(node)} lines)")
    assert not long, long


# --------------------------------------------------------------------------------------------
# One table per concept


def test_the_format_table_is_whole():
    """Every row's entry points exist; its runtimes, toolchain and precisions are known names."""
    from edgeseg.formats import FORMATS, PRECISIONS, RUNTIMES, TOOLS, entry_point

    suffixes = [f.suffix for f in FORMATS.values() if f.name != "ort"]
    assert len(set(f.file for f in FORMATS.values())) == len(FORMATS) and len(set(suffixes)) == len(suffixes)
    for fmt in FORMATS.values():
        assert callable(entry_point(fmt.exporter)), fmt.name
        assert set(fmt.runtimes) <= set(RUNTIMES) and set(fmt.toolchain) <= set(TOOLS), fmt.name
        assert fmt.precisions and set(fmt.precisions) <= set(PRECISIONS), fmt.name
        assert fmt.precision_note or fmt.precisions == PRECISIONS, f"{fmt.name}: say why a precision is missing"
    for runtime in RUNTIMES.values():
        module, _, cls = runtime.session.partition(":")
        assert (REPO / (module.replace(".", "/") + ".py")).is_file() and cls, runtime.name


def test_everything_else_derives_from_the_format_table():
    from edgeseg.formats import FORMAT_NAMES, PRECISIONS, REFERENCE_FORMAT, RUNTIME_NAMES
    from edgeseg.recipe import ExportTarget

    assert ExportTarget.model_fields["format"].annotation.__args__ == FORMAT_NAMES
    assert ExportTarget.model_fields["precision"].annotation.__args__ == PRECISIONS
    schema = json.loads((PACKAGE / "schemas" / "bench.schema.json").read_text())["$defs"]["result"]["properties"]
    assert schema["artifact"]["properties"]["format"]["enum"] == [*FORMAT_NAMES, REFERENCE_FORMAT]
    assert schema["artifact"]["properties"]["precision"]["enum"] == list(PRECISIONS)
    assert schema["session"]["properties"]["runtime"]["enum"] == list(RUNTIME_NAMES)


def test_a_registry_refuses_a_duplicate_and_a_lookup_suggests_the_nearest_name():
    from edgeseg.errors import UnknownNameError
    from edgeseg.formats import FORMATS, Format, get_format, get_runtime
    from edgeseg.registry import table

    with pytest.raises(ValueError, match="export format 'onnx' is registered twice"):
        table([*FORMATS.values(), Format("onnx", "x.onnx", ("onnxruntime",), "m:f", ())], "export format")
    known = ", ".join(sorted(FORMATS))
    suggestion = rf"unknown export format 'onxx' \(did you mean 'onnx'\?\); known: {known}"
    with pytest.raises(UnknownNameError, match=suggestion) as info:
        get_format("onxx")
    assert info.value.exit_code == 2
    with pytest.raises(UnknownNameError, match=r"did you mean 'openvino'"):
        get_runtime("openvin")


def test_the_stage_table_drives_the_build_and_the_cli():
    from edgeseg.build.stages import STAGE_NAMES, STAGES
    from edgeseg.cli import app

    assert STAGE_NAMES == ("data", "train", "adapt", "eval", "compress", "export", "bench", "select", "report")
    assert all(stage.spec and stage.upstream and stage.run for stage in STAGES)
    result = CliRunner().invoke(app, ["build", "--help"], terminal_width=200)
    assert ", ".join(STAGE_NAMES) in re.sub(r"\s+", " ", result.output.replace("│", " "))


def test_cli_exit_codes_come_from_the_app_itself(tmp_path):
    from edgeseg.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(tmp_path / "missing.pt")])
    assert result.exit_code == 6 and "missing.pt: checkpoint not found" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {dataset: synthetic}\nexport: {targets: [{format: onxx}]}\n")
    result = runner.invoke(app, ["recipe", "check", str(bad)])
    assert result.exit_code == 2
    from edgeseg.formats import FORMAT_NAMES

    message = f"export.targets[0].format: 'onxx' is not one of {', '.join(FORMAT_NAMES)} (did you mean 'onnx'?)"
    assert f"{bad}: {message}" in result.stderr


# --------------------------------------------------------------------------------------------
# The README's recipe reference


def _reference_block() -> list[str]:
    readme = (REPO / "README.md").read_text()
    block = readme.split("### Reference (defaults in brackets)", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    return block.splitlines()


def _default(model: type[BaseModel], name: str):
    field = model.model_fields[name]
    value = field.get_default(call_default_factory=True)

    def plain(v):
        return v.model_dump(mode="json") if isinstance(v, BaseModel) else v

    value = [plain(v) for v in value] if isinstance(value, list) else plain(value)
    return json.loads(json.dumps(value, default=list))


def _section(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    annotation = model.model_fields[name].annotation
    if get_origin(annotation) in (Union, UnionType):  # an optional section (select, sweep): its model
        annotation = next((a for a in get_args(annotation) if a is not type(None)), None)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def test_the_readme_recipe_reference_lists_every_field_with_its_real_default():
    from edgeseg.recipe import PruneStep, QuantizeStep, Recipe, SparsityStep

    stack: list[tuple[int, type[BaseModel]]] = [(-1, Recipe)]
    listed: dict[type[BaseModel], set[str]] = {}
    steps = {"prune": PruneStep, "sparsity": SparsityStep, "qat": QuantizeStep, "ptq": QuantizeStep}
    for line in _reference_block():
        step = re.match(r"\s*# ([a-z, ]+): (\{.*\})\s*$", line)
        if step:  # a compression step's defaults, documented as one flow mapping
            for kind in step.group(1).split(", "):
                documented, model = yaml.safe_load(step.group(2)), steps[kind]
                assert set(documented) == set(model.model_fields) - {"kind"}, kind
                assert documented == {k: _default(model, k) for k in documented}, kind
            continue
        entry = re.match(r"(\s*)([a-z0-9_]+):(.*?)(?:\s+#\s*(.*))?$", line)
        if not entry or line.lstrip().startswith("#"):
            continue
        indent, key, value, comment = len(entry.group(1)), entry.group(2), entry.group(3).strip(), entry.group(4) or ""
        while stack[-1][0] >= indent:
            stack.pop()
        model = stack[-1][1]
        assert key in model.model_fields, f"README lists {key}, which {model.__name__} does not have"
        listed.setdefault(model, set()).add(key)
        if not value:
            stack.append((indent, _section(model, key)))
        elif "required" not in comment:
            assert yaml.safe_load(value) == _default(model, key), f"{model.__name__}.{key}: README says {value}"
    for model, keys in listed.items():
        assert keys == set(model.model_fields), f"{model.__name__}: not in the README: {set(model.model_fields) - keys}"


def test_stage_directory_names_are_made_and_parsed_in_one_module():
    from edgeseg.build.names import bench_dir, export_dir, export_target

    assert export_dir("onnx-int8") == "export-onnx-int8" and export_target("export-onnx-int8") == "onnx-int8"
    assert bench_dir("local") == "bench" and bench_dir("jetson") == "bench-jetson"
    assert export_target("bench-jetson") is None and export_target("train") is None
    spelled = re.compile(r"""f?["'](export|bench)-(\{|["'])|(remove)?prefix\(["'](export|bench)-""")
    elsewhere = [
        f"{path.relative_to(REPO)}:{number}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "names.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if spelled.search(line) or 'startswith("export-' in line
    ]
    assert not elsewhere, f"stage directory names spelled outside edgeseg/build/names.py: {elsewhere}"


def test_every_stage_reports_a_typed_info_and_directories_map_back_to_their_stage():
    import dataclasses

    from edgeseg.build.stages import STAGES, StageInfo, stage_of

    for stage in STAGES:
        assert dataclasses.is_dataclass(stage.info) and issubclass(stage.info, StageInfo), stage.name
        assert stage.run.__annotations__["return"] == stage.info.__name__, stage.run.__name__
        assert stage.info.from_json({}).as_json() == dict.fromkeys(f.name for f in dataclasses.fields(stage.info))
    assert stage_of("export-onnx-int8").per_target and stage_of("bench-jetson").per_device
    assert stage_of("bench").run.__name__ == "_bench" and stage_of("train").name == "train"
