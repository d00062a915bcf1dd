"""Hardening round two, defect class 2: every input that is read is bounded before it is
allocated (``edgeseg.limits``), with one line and the table's exit code. Each case is a variant
the first campaign did not show, beside the one it did."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.limits import LIMITS, limit, markdown_table

from conftest import REPO

runner = CliRunner()
RECIPE = "name: x\ndata: {dataset: synthetic}\n"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def refused(result, code: int, *fragments: str) -> str:
    """One line on stderr holding every fragment, the exit code, no traceback."""
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert result.exit_code == code and len(lines) == 1, (result.exit_code, result.stderr, result.exception)
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def recipe(tmp_path) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE)
    return path


def bomb_value(levels: int) -> str:
    """A YAML flow value of a few hundred bytes that expands to 10^levels items."""
    text = "[&a0 [1,1,1,1,1,1,1,1,1,1]"
    for i in range(1, levels):
        text += f", &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]"
    return text + "]"


@pytest.mark.timeout(60)
def test_overrides_and_grid_values_are_bounded_like_the_file(recipe):
    bomb = bomb_value(9)
    assert len(bomb) < 500
    refused(invoke("recipe", "check", recipe, "--set", f"data.class_names={bomb}"), 2, "--set data.class_names")
    refused(invoke("recipe", "check", recipe, "--set", "model={a: 1, a: 2}"), 2, "key 'a' is given twice")
    refused(invoke("recipe", "check", recipe, "--set", "train=&t {x: *t}"), 2, "cannot contain itself")
    refused(invoke("sweep", recipe, "--grid", f"train.epochs={bomb}"), 2, "--grid train.epochs", "recipe_values")
    refused(invoke("sweep", recipe, "--grid", "train.epochs=&e [*e]"), 2, "--grid train.epochs", "contain itself")
    refused(invoke("sweep", recipe, "--grid", "train.epochs=1,,2"), 2, "--grid train.epochs: an empty value")
    # Many small --set values together are one recipe: its bound holds for the sum.
    many = [f"data.class_names=[{','.join(['c'] * 200)}]"] + [f"x{i}=[{','.join(['1'] * 400)}]" for i in range(30)]
    result = invoke("recipe", "check", recipe, *(arg for value in many for arg in ("--set", value)))
    refused(result, 2, "with --set", "recipe_values")


def test_nesting_past_the_depth_limit_is_one_line_at_any_depth(tmp_path, recipe):
    for levels in (limit("recipe_depth") + 1, 320, 5000):
        deep = tmp_path / f"deep{levels}.yaml"
        deep.write_text(RECIPE + "model: " + "[" * levels + "]" * levels + "\n")
        refused(invoke("recipe", "check", deep), 2, str(deep))
    refused(invoke("recipe", "check", recipe, "--set", "model=" + "[" * 400 + "]" * 400), 2, "--set model")


def test_merge_keys_are_ordinary_yaml_and_bounded_like_aliases(tmp_path):
    merged = tmp_path / "merged.yaml"
    merged.write_text(
        "base: &base {epochs: 3, lr: 0.01}\n"
        "name: x\ndata: {dataset: synthetic}\n"
        "train: {<<: *base, lr: 0.02}\n"  # merged keys may be overridden: that is what merge keys are for
    )
    result = invoke("recipe", "show", merged)
    assert "unknown field" in result.stderr  # `base` is not a recipe field: the merge itself was read
    fine = tmp_path / "fine.yaml"
    fine.write_text("name: x\ndata: {dataset: synthetic}\ntrain: {<<: {epochs: 3}, lr: 0.02}\n")
    shown = invoke("recipe", "show", fine)
    assert shown.exit_code == 0 and "epochs: 3" in shown.stdout and "lr: 0.02" in shown.stdout
    bomb = tmp_path / "merge-bomb.yaml"
    text = "name: x\ndata: {dataset: synthetic}\nm0: &m0 {a: [1,1,1,1,1,1,1,1,1,1]}\n"
    for i in range(1, 8):
        text += f"m{i}: &m{i} {{<<: *m{i - 1}, " + ", ".join(f"k{j}: *m{i - 1}" for j in range(10)) + "}\n"
    bomb.write_text(text)
    refused(invoke("recipe", "check", bomb), 2, "recipe_values")


@pytest.mark.timeout(60)
def test_a_recipe_path_that_never_ends_is_read_no_further_than_the_limit(tmp_path):
    refused(invoke("recipe", "check", "/dev/zero"), 2, "/dev/zero: more than 1,048,576 bytes")
    fifo = tmp_path / "recipe.fifo"
    os.mkfifo(fifo)

    def endless_writer():
        try:
            with open(fifo, "wb") as stream:
                while True:
                    stream.write(b"# " + b"x" * 65534 + b"\n")
        except BrokenPipeError:
            pass  # the reader stopped at the limit and closed its end

    writer = threading.Thread(target=endless_writer, daemon=True)
    writer.start()
    refused(invoke("recipe", "check", fifo), 2, f"{fifo}: more than 1,048,576 bytes")
    writer.join(timeout=10)
    refused(invoke("recipe", "check", tmp_path), 2, f"{tmp_path}: cannot read the recipe")


def test_sizes_names_and_counts_in_a_recipe_are_bounded_at_check(tmp_path):
    cases = {
        "export: {input_size: [100000, 100000]}": "export.input_size",
        "export: {input_size: [64, 9000]}": "export.input_size",
        "train: {epochs: 1}\ndata: {dataset: synthetic, synthetic: {height: 100000}}": "data.synthetic.height",
        "data: {dataset: synthetic, synthetic: {num_train: 100000000}}": "data.synthetic.num_train",
        "sweep: {grid: {train.epochs: [1, 2]}, jobs: 1000}": "sweep.jobs",
    }
    for i, (text, field) in enumerate(cases.items()):
        path = tmp_path / f"r{i}.yaml"
        path.write_text(("name: x\n" if "data:" in text else RECIPE) + text + "\n")
        refused(invoke("recipe", "check", path), 2, str(path), field)
    named = tmp_path / "long.yaml"
    named.write_text(f"name: {'n' * 300}\ndata: {{dataset: synthetic}}\n")
    refused(invoke("recipe", "check", named), 2, "name")


@pytest.mark.timeout(60)
def test_a_sweep_grid_past_the_variant_limit_is_refused_before_any_variant_is_made(recipe):
    grid = [
        arg
        for key in ("train.epochs", "train.lr", "seed", "train.batch_size", "train.weight_decay")
        for arg in ("--grid", f"{key}={','.join(str(v + 1) for v in range(10))}")
    ]
    refused(invoke("sweep", recipe, *grid), 2, "100,000 variants (10 x 10 x 10 x 10 x 10)", "sweep_variants")
    grid_file = recipe.parent / "grid.yaml"
    grid_file.write_text(RECIPE + "sweep: {grid: {train.epochs: [" + ",".join(map(str, range(1, 300))) + "]}}\n")
    refused(invoke("recipe", "check", grid_file), 2, "sweep.grid", "sweep_variants")
    refused(invoke("sweep", recipe, "--grid", "train.epochs=1,2", "--jobs", "100000"), 2, "--jobs")


def test_variant_names_stay_directory_names_however_many_keys_the_grid_has(tiny_recipe):
    from edgeseg.experiments.sweep import variants

    keys = ["train.epochs", "train.lr", "train.batch_size", "train.weight_decay", "seed", "train.warmup_epochs"]
    grid = {key: [1] for key in keys} | {"train.lr": [0.001234567890123456789, 0.002]}
    made = variants(tiny_recipe(), grid, "r.yaml")
    assert len({v.name for v in made}) == 2
    assert all(len(v.name) <= limit("name_chars") and len(v.recipe.name) <= limit("name_chars") for v in made)


def test_predict_refuses_an_image_that_decodes_past_the_pixel_limit(tmp_path, checkpoint):
    big = tmp_path / "bomb.png"
    Image.new("P", (10_000, 10_000)).save(big, optimize=True)  # 12 KB on disk, 100 MP decoded
    assert big.stat().st_size < 300_000
    out = tmp_path / "pred"
    refused(invoke("predict", checkpoint, big, "--out", out), 10, f"{big}: 10000x10000 is more than", "image_pixels")
    assert not out.exists()  # nothing written for a refused input


def test_a_hostile_devices_result_json_is_one_line_exit_12():
    from edgeseg.bench.environment import environment
    from edgeseg.bench.remote import Device, checked_result
    from edgeseg.errors import RemoteError

    device = Device.parse("me@jetson.local")
    for reply, says in (
        ("x" * (limit("remote_result_bytes") + 1), "remote_result_bytes"),
        ("{not json", "not JSON"),
        ('{"schema": "edgeseg.bench/1", "results": 3, "environment": {}}', "results"),
        (json.dumps({"schema": "edgeseg.bench/1", "results": [], "environment": environment()}), "0 results for 1"),
        ("[[[[[[[[[[" * 10_000, "not JSON"),
    ):
        with pytest.raises(RemoteError, match=says) as caught:
            checked_result(device, reply, 1)
        assert "\n" not in str(caught.value) and "jetson.local" in str(caught.value)


def test_the_readme_limits_table_is_the_limits_table():
    readme = (REPO / "README.md").read_text()
    assert markdown_table() in readme, "regenerate the README's limits table from edgeseg.limits.markdown_table()"
    assert set(LIMITS) == {line.split("`")[1] for line in markdown_table().splitlines()[2:]}
