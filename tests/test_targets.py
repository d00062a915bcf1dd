"""Build here, run there: int8 that follows its target, checked on the target's numerics under qemu."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeseg.errors import DependencyError, RecipeError
from edgeseg.runtimes.emulate import QEMU, EmulatedSession
from edgeseg.targets import ISAS, TARGET_NAMES, TARGETS, host_isa

from conftest import tiny_recipe_dict

needs_qemu_x86 = pytest.mark.skipif(
    shutil.which(QEMU["x86-avx2"]) is None, reason="qemu-user-static is not installed (.ci/run installs it)"
)
needs_qemu_arm64 = pytest.mark.skipif(
    shutil.which(QEMU["arm64"]) is None or shutil.which("apt-get") is None,
    reason="qemu-user-static or apt-get is not here (.ci/run installs qemu-user-static)",
)


def saturating_int8_model(directory: Path, *, seven_bit: bool) -> tuple[Path, np.ndarray]:
    """A small conv net whose weights use the whole int8 range (scaled up 4x, as trained weights
    with outliers do), quantized by ONNX Runtime's static PTQ as edgeseg's ort_static method does:
    u8 activations, s8 per-channel weights, 7-bit with ``seven_bit``."""
    import torch

    from edgeseg.exporters.onnx_export import INPUT_NAME, ort_static_int8

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(32, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(32, 8, 1),
    ).eval()
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.mul_(4)
    inputs = np.random.default_rng(0).standard_normal((4, 1, 3, 32, 32)).astype(np.float32)
    fp32 = directory / "fp32.onnx"
    torch.onnx.export(net, torch.from_numpy(inputs[0]), fp32, input_names=[INPUT_NAME], dynamo=False)
    int8 = directory / ("int8-7bit.onnx" if seven_bit else "int8.onnx")
    ort_static_int8(fp32, int8, list(inputs), seven_bit=seven_bit)
    return int8, inputs


def session_on(isa: str, model: Path):
    """ONNX Runtime on this host (``native``) or under emulation of ``isa``."""
    from edgeseg.runtimes.session import open_session

    return (
        open_session(model, "onnxruntime", threads=1) if isa == "native" else EmulatedSession(model, "onnxruntime", isa)
    )


def agreement(model: Path, inputs: np.ndarray, a: str, b: str) -> tuple[float, float]:
    """Pixel agreement (argmax) and max |Δ| between ONNX Runtime on two instruction sets."""
    first, second = session_on(a, model), session_on(b, model)
    same, pixels, worst = 0, 0, 0.0
    for batch in inputs:
        x, y = first.run(batch), second.run(batch)
        same += int((x.argmax(1) == y.argmax(1)).sum())
        pixels += x.shape[0] * x.shape[2] * x.shape[3]
        worst = max(worst, float(np.abs(x - y).max()))
    for session in (first, second):
        getattr(session, "close", lambda: None)()
    return same / pixels, worst


@pytest.mark.slow
@needs_qemu_x86
@needs_qemu_arm64
def test_8_bit_weights_saturate_on_avx2_and_7_bit_weights_agree_everywhere(tmp_path, monkeypatch):
    """The measured pitfall (ONNX Runtime's u8s8 ``VPMADDUBSW`` on x86 without VNNI) and its remedy,
    on emulated instruction sets whatever the host: arm64 accumulates exactly, as VNNI does, so
    8-bit weights give AVX2 other numbers than arm64; the x86-avx2 / any targets' 7-bit weights
    give every instruction set (this host's too) the same integers."""
    monkeypatch.setenv("EDGESEG_CACHE", str(tmp_path / "cache"))
    eight, inputs = saturating_int8_model(tmp_path, seven_bit=False)
    saturated, worst = agreement(eight, inputs, "x86-avx2", "arm64")
    assert saturated < 0.99 and worst > 0.1, (saturated, worst)
    seven, _ = saturating_int8_model(tmp_path, seven_bit=True)
    assert agreement(seven, inputs, "x86-avx2", "arm64") == (1.0, 0.0)
    assert agreement(seven, inputs, "native", "arm64") == (1.0, 0.0)
    with EmulatedSession(seven, "onnxruntime", "arm64") as emulated:  # the userland, assembled once
        from importlib.metadata import version

        assert emulated.info.details["onnxruntime"] == version("onnxruntime")  # this host's, for aarch64
    assert [p.name.split("-")[:2] for p in (tmp_path / "cache").iterdir() if p.is_dir()] == [["arm64", "onnxruntime"]]


def test_qemu_missing_is_exit_7_naming_the_install_command(tmp_path, monkeypatch):
    from edgeseg.runtimes.emulate import QEMU_INSTALL, qemu_binary

    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no qemu anywhere
    for isa in ISAS:
        with pytest.raises(DependencyError, match=f"needs qemu-.*install it with: {QEMU_INSTALL}") as info:
            qemu_binary(isa)
        assert info.value.exit_code == 7 and "\n" not in str(info.value)


def test_a_build_without_on_target_checks_needs_no_qemu(tmp_path, monkeypatch):
    from edgeseg.exporters.export import check_toolchains
    from edgeseg.recipe import recipe_from_dict

    recipe = recipe_from_dict(tiny_recipe_dict(export={"targets": [{"format": "onnx", "precision": "int8"}]}))
    monkeypatch.setenv("PATH", str(tmp_path))  # no qemu anywhere
    refused = r"export.targets\[0\] \(onnx-int8\) cannot be built on this machine.*qemu"
    with pytest.raises(DependencyError, match=refused):
        check_toolchains(recipe.export.targets, recipe.export.target)
    check_toolchains(recipe.export.targets, recipe.export.target, emulate=False)


def test_a_target_is_a_recipe_choice_named_in_its_artifact_and_unknown_ones_are_refused():
    from edgeseg.recipe import recipe_from_dict

    recipe = recipe_from_dict(
        tiny_recipe_dict(
            export={
                "target": "x86-avx2",
                "targets": [
                    {"format": "onnx", "precision": "int8"},
                    {"format": "ort", "precision": "int8", "target": "arm64"},
                ],
            }
        )
    )
    plain, arm = recipe.export.targets
    assert (plain.name, plain.deployed_on(recipe.export.target)) == ("onnx-int8", "x86-avx2")
    assert (arm.name, arm.deployed_on(recipe.export.target)) == ("ort-int8-arm64", "arm64")
    with pytest.raises(RecipeError, match=r"export.targets\[0\].target: 'arm' is not one of .*did you mean 'arm64'"):
        recipe_from_dict(
            tiny_recipe_dict(export={"targets": [{"format": "onnx", "precision": "int8", "target": "arm"}]})
        )
    with pytest.raises(RecipeError, match="target cuda runs through TensorRT"):
        recipe_from_dict(
            tiny_recipe_dict(export={"targets": [{"format": "ort", "precision": "int8", "target": "cuda"}]})
        )
    with pytest.raises(RecipeError, match="compress.steps\\[0\\].target: target 'cpu' is now named by instruction set"):
        recipe_from_dict(tiny_recipe_dict(compress={"steps": [{"kind": "ptq", "target": "cpu"}]}))


def test_every_target_checks_known_instruction_sets_and_the_host_is_one_of_them():
    assert TARGET_NAMES[0] == "any" and set(TARGETS["any"].check_on) == set(ISAS)
    assert all(set(t.check_on) <= set(ISAS) for t in TARGETS.values())
    assert [t.name for t in TARGETS.values() if t.seven_bit_weights] == ["any", "x86-avx2"]
    assert host_isa() in ISAS


def test_a_cpu_int8_runtime_that_cannot_run_under_an_emulated_isa_says_why():
    """model.json's unchecked entries carry the measured reason, not just "cannot"."""
    from types import SimpleNamespace

    from edgeseg.exporters.verify import _why_not_emulated
    from edgeseg.formats import FORMATS, RUNTIMES

    int8_cpu = {f.verify_runtime.name for f in FORMATS.values() if "int8" in f.precisions} & {
        r.name for r in RUNTIMES.values() if r.device == "cpu" and r.emulated_on
    }
    assert int8_cpu == {"onnxruntime", "openvino", "litert", "executorch"}
    job = SimpleNamespace(spec=SimpleNamespace(verify=SimpleNamespace(on_target=True)))
    for name in int8_cpu:
        runtime = RUNTIMES[name]
        for isa in ("x86-avx2", "arm64"):
            why = _why_not_emulated(job, runtime, isa)
            assert (why is None) == (isa in runtime.emulated_on), (name, isa)
            assert why is None or (runtime.not_emulated and why.endswith(runtime.not_emulated)), (name, isa)
    assert "CUDA build" in RUNTIMES["executorch"].not_emulated and "arm64" not in RUNTIMES["executorch"].emulated_on


def test_bench_emulate_names_the_known_instruction_sets(tmp_path):
    from typer.testing import CliRunner

    from edgeseg.cli import app

    bundle = tmp_path / "b"
    bundle.mkdir()
    result = CliRunner().invoke(app, ["bench", str(bundle), "--emulate", "x86-avx3"])
    assert result.exit_code == 2 and "unknown instruction set (did you mean 'x86-avx2'?)" in result.output


def test_the_readme_targets_table_is_the_target_table():
    from edgeseg.targets import markdown_table

    from conftest import REPO

    readme = (REPO / "README.md").read_text()
    assert markdown_table() in readme, "regenerate the README's targets table from edgeseg.targets.markdown_table()"


def test_the_bench_schema_and_recipe_name_the_same_instruction_sets_and_targets():
    import json

    from edgeseg.recipe import ExportSpec, QuantizeStep

    from conftest import REPO

    schema = json.loads((REPO / "edgeseg" / "schemas" / "bench.schema.json").read_text())
    accuracy = schema["$defs"]["result"]["properties"]["accuracy"]["oneOf"][1]["properties"]
    assert accuracy["on_target"]["items"]["properties"]["isa"]["enum"] == list(ISAS)
    for model in (ExportSpec, QuantizeStep):
        assert model.model_fields["target"].annotation.__args__ == TARGET_NAMES


def test_max_target_drop_rejects_an_artifact_whose_worst_instruction_set_loses_too_much():
    from edgeseg.recipe import GatesSpec
    from edgeseg.select.gates import check_gates

    def result(name: str, miou: float, on_target: list[tuple[str, float]], role: str = "artifact") -> dict:
        accuracy = {"miou": miou, "agreement_with_reference": 0.99}
        accuracy["on_target"] = [{"isa": isa, "miou": m, "agreement_with_native": 0.9} for isa, m in on_target]
        return {"name": name, "role": role, "accuracy": accuracy, "latency": []}

    results = [
        result("pytorch-fp32", 52.05, [], role="reference"),
        result("onnx-int8-x86-vnni", 52.30, [("x86-avx2", 48.47), ("arm64", 52.30)]),  # benchmarks section 18
        result("onnx-int8", 52.33, [("x86-avx2", 52.33), ("arm64", 52.33)]),
        result("onnx-fp32", 52.05, []),
    ]
    failures = check_gates(GatesSpec(max_target_drop=0.5), results)
    assert list(failures) == ["onnx-int8-x86-vnni"]
    assert failures["onnx-int8-x86-vnni"] == [
        "mIoU drop vs fp32 on the target's worst instruction set 3.58 is above the maximum 0.5 (gates.max_target_drop)"
    ]


def test_max_target_drop_needs_the_emulated_scores():
    from edgeseg.recipe import recipe_from_dict

    with pytest.raises(RecipeError, match="gates.max_target_drop needs bench.accuracy, bench.emulate"):
        recipe_from_dict(tiny_recipe_dict(gates={"max_target_drop": 0.5}))  # the tiny recipe: bench.emulate false
    recipe = recipe_from_dict(tiny_recipe_dict(gates={"max_target_drop": 0.5}, bench={"emulate": True}))
    assert recipe.gates.max_target_drop == 0.5
