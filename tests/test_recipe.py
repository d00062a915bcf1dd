"""The recipe schema: exact messages, overrides, variables, shipped recipes, and a fuzz."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeseg.errors import RecipeError
from edgeseg.recipe import BACKBONE_NAMES, DATASET_NAMES, HEAD_NAMES, load_recipe, recipe_from_dict

from conftest import REPO, tiny_recipe_dict


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def error_of(path: Path, overrides=()) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    return str(info.value)


def test_unknown_key_suggests_the_nearest(tmp_path):
    path = write(tmp_path, tiny_recipe_dict(train={"epoch": 3}))
    assert error_of(path) == f"{path}: train.epoch: unknown field (did you mean 'epochs'?)"


def test_unknown_top_level_key(tmp_path):
    path = write(tmp_path, {**tiny_recipe_dict(), "modle": {}})
    assert error_of(path) == f"{path}: modle: unknown field (did you mean 'model'?)"


def test_wrong_type_names_the_value(tmp_path):
    path = write(tmp_path, tiny_recipe_dict(train={"epochs": "ten"}))
    assert (
        error_of(path)
        == f"{path}: train.epochs: Input should be a valid integer, unable to parse string as an integer, got 'ten'"
    )


def test_bad_choice_lists_options_and_suggests(tmp_path):
    path = write(tmp_path, tiny_recipe_dict(model={"backbone": "mobilenetv2"}))
    message = error_of(path)
    assert message.startswith(f"{path}: model.backbone: 'mobilenetv2' is not one of mobilenet_v3_large")
    assert message.endswith("(did you mean 'mobilenet_v2'?)")


def test_missing_required_field(tmp_path):
    path = write(tmp_path, {"name": "x"})
    assert error_of(path) == f"{path}: data: required field is missing"


def test_cross_field_rules(tmp_path):
    path = write(tmp_path, tiny_recipe_dict(data={"dataset": "camvid"}))
    assert error_of(path) == f"{path}: data: dataset 'camvid' needs data.root (a directory)"
    path = write(tmp_path, tiny_recipe_dict(model={"weights": "DeepLabV3_ResNet50_Weights.DEFAULT"}))
    assert "fits head 'deeplabv3' on backbone 'resnet50', not 'lraspp' on 'mobilenet_v3_small'" in error_of(path)


def test_every_error_is_reported_at_once(tmp_path):
    path = write(tmp_path, tiny_recipe_dict(train={"epochs": 0, "lr": -1}))
    lines = error_of(path).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["train.epochs", "train.lr"]


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "name: x\ndata: [unclosed\n")
    assert error_of(path).startswith(f"{path}: not valid YAML at line 3")


def test_missing_file(tmp_path):
    assert error_of(tmp_path / "none.yaml") == f"{tmp_path / 'none.yaml'}: no such recipe file"


def test_set_overrides_parse_yaml_values(tmp_path):
    path = write(tmp_path, tiny_recipe_dict())
    recipe = load_recipe(path, ["train.epochs=5", "data.augment.scale=[0.5, 1.0]", "model.backbone=mobilenet_v2"])
    assert recipe.train.epochs == 5
    assert recipe.data.augment.scale == (0.5, 1.0)
    assert recipe.model.backbone == "mobilenet_v2"


def test_set_override_errors_name_the_override(tmp_path):
    path = write(tmp_path, tiny_recipe_dict())
    assert "expected dotted.key=value" in error_of(path, ["train.epochs"])
    assert error_of(path, ["name.sub=1"]) == f"{path}: --set name.sub: name is a value, not a section"
    assert error_of(path, ["train.epocs=1"]) == f"{path}: train.epocs: unknown field (did you mean 'epochs'?)"


def test_env_expansion(tmp_path, monkeypatch):
    data = tiny_recipe_dict(data={"dataset": "camvid", "root": "${EDGESEG_TEST_ROOT}/camvid"})
    path = write(tmp_path, data)
    monkeypatch.delenv("EDGESEG_TEST_ROOT", raising=False)
    assert error_of(path) == (
        f"{path}: data.root: environment variable EDGESEG_TEST_ROOT is not set "
        "(set it, or write ${EDGESEG_TEST_ROOT:-default})"
    )
    monkeypatch.setenv("EDGESEG_TEST_ROOT", "/data")
    assert load_recipe(path).data.root == "/data/camvid"
    path = write(
        tmp_path, tiny_recipe_dict(data={"dataset": "camvid", "root": "${EDGESEG_TEST_UNSET:-/fallback}/camvid"})
    )
    monkeypatch.delenv("EDGESEG_TEST_UNSET", raising=False)
    assert load_recipe(path).data.root == "/fallback/camvid"


@pytest.mark.parametrize("path", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_validate(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem


def test_digest_ignores_formatting(tmp_path):
    a = write(tmp_path, tiny_recipe_dict())
    b = tmp_path / "b.json"
    b.write_text(json.dumps(tiny_recipe_dict(), indent=4))
    assert load_recipe(a).digest() == load_recipe(b).digest()
    assert load_recipe(a, ["train.epochs=3"]).digest() != load_recipe(a).digest()


def test_schema_names_match_registries():
    from edgeseg.data import DATASETS
    from edgeseg.models import BACKBONES, HEADS

    assert set(DATASET_NAMES) == set(DATASETS)
    assert set(BACKBONE_NAMES) == set(BACKBONES)
    assert set(HEAD_NAMES) == set(HEADS)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
compress_steps = st.lists(
    st.fixed_dictionaries(
        {"kind": st.sampled_from(["prune", "sparsity", "qat", "ptq", "prun"]) | yaml_values},
        optional={
            "ratio": yaml_values | st.floats(0, 1.2),
            "target_macs": yaml_values,
            "epochs": yaml_values,
            "distill": yaml_values,
            "importance": yaml_values,
            "protected": yaml_values,
            "epoch": yaml_values,
        },
    ),
    max_size=3,
)
near_recipes = st.fixed_dictionaries(
    {"name": yaml_values | st.just("ok"), "data": yaml_values | st.just({"dataset": "synthetic"})},
    optional={
        "model": yaml_values,
        "train": yaml_values,
        "seed": yaml_values,
        "extra": yaml_values,
        "compress": yaml_values | st.fixed_dictionaries({"steps": compress_steps}),
        "bench": yaml_values,
        "gates": yaml_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(yaml_values, near_recipes))
@pytest.mark.slow
def test_fuzz_only_recipe_errors(raw):
    try:
        recipe_from_dict(raw)
    except RecipeError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_fuzz_yaml_text(text):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "r.yaml"
        path.write_text(text)
        try:
            load_recipe(path, ["train.epochs=2"])
        except RecipeError:
            pass
