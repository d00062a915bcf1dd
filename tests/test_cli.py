"""The CLI: lean start-up, exit codes and messages, and the README's two commands."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, tiny_recipe_dict


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgeseg", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_help_does_not_import_torch():
    code = (
        "import sys, edgeseg.cli; "
        "heavy = [m for m in ('torch', 'torchvision', 'nncf', 'onnxruntime', 'openvino') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("build", "train", "eval", "predict", "export", "recipe"):
        assert command in result.stdout


def test_bad_recipe_exits_2_with_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndata: {dataset: synthetic}\ntrain: {epoch: 3}\n")
    result = run_cli("recipe", "check", path)
    assert result.returncode == 2
    assert f"{path}: train.epoch: unknown field (did you mean 'epochs'?)" in result.stderr
    assert "Traceback" not in result.stderr


def test_recipe_show_applies_set(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps(tiny_recipe_dict()))
    result = run_cli("recipe", "show", path, "--set", "train.epochs=7")
    assert result.returncode == 0, result.stderr
    assert "epochs: 7" in result.stdout


def test_unknown_command_is_a_usage_error():
    result = run_cli("buidl")
    assert result.returncode == 2
    assert "No such command" in result.stderr


@pytest.mark.slow
def test_missing_checkpoint_is_a_clear_error(tmp_path):
    result = run_cli("eval", tmp_path / "nope.pt")
    assert result.returncode == 6
    assert "nope.pt: checkpoint not found" in result.stderr


def test_readme_commands_match_ci():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    test_command = next(line.strip() for line in ci.splitlines() if "pytest" in line and not line.startswith("#"))
    assert f"    {test_command}\n" in readme
    assert (
        '    python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e ".[train,efficientnet]" '
        "&& .venv/bin/edgeseg build recipes/quickstart.yaml\n" in readme
    )
