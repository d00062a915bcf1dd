"""The recipe: one YAML file that says what to train, compress, export and measure.

``load_recipe`` reads the YAML, expands ``${VAR}`` / ``${VAR:-default}`` in string values,
applies ``--set dotted.key=value`` overrides, and validates against a strict pydantic schema.
Every failure becomes a :class:`RecipeError` that names the file, the dotted field and the fix:

    recipes/x.yaml: train.epoch: unknown field (did you mean 'epochs'?)

The schema lives in one module per section (``data``, ``model``, ``train``, ``export``,
``compress``, ``bench``, ``select``; ``root`` holds the whole ``Recipe``); reading files is
``load``, ``--set`` is ``overrides``, validation and its messages ``validate``. This face
re-exports what the rest of edgeseg uses.
"""

from edgeseg.recipe._base import (
    BACKBONE_NAMES,
    DATASET_NAMES,
    HEAD_NAMES,
    IMPORT_FORMAT_NAMES,
    MAX_CLASSES,
    MIN_SIDE,
    TORCHVISION_SEG_WEIGHTS,
    Channel,
    Size,
)
from edgeseg.recipe.bench import BenchSection, GatesSpec, RemoteDevice, RobustnessSpec
from edgeseg.recipe.compress import (
    STEP_KINDS,
    CompressSpec,
    CompressStep,
    DistillSpec,
    PruneStep,
    QuantizeStep,
    SparsityStep,
)
from edgeseg.recipe.data import SPLIT_NAMES, AugmentSpec, DataSpec, SyntheticSpec, ValidationSpec
from edgeseg.recipe.export import (
    CalibrationSpec,
    CoreMLSpec,
    ExportSpec,
    ExportTarget,
    LiteRTSpec,
    PT2ESpec,
    TensorRTSpec,
    VerifySpec,
)
from edgeseg.recipe.load import MAX_BYTES, MAX_VALUES, load_recipe
from edgeseg.recipe.model import ModelSpec
from edgeseg.recipe.overrides import apply_overrides
from edgeseg.recipe.root import Recipe, TrackingSpec
from edgeseg.recipe.select import SelectSpec, SweepSpec
from edgeseg.recipe.train import AdaptSpec, EvalSpec, TrainSpec
from edgeseg.recipe.validate import dotted_fields, parse_target, recipe_from_dict, recipe_to_yaml

__all__ = [
    "DATASET_NAMES",
    "IMPORT_FORMAT_NAMES",
    "BACKBONE_NAMES",
    "HEAD_NAMES",
    "TORCHVISION_SEG_WEIGHTS",
    "MIN_SIDE",
    "MAX_CLASSES",
    "Size",
    "Channel",
    "SyntheticSpec",
    "AugmentSpec",
    "SPLIT_NAMES",
    "ValidationSpec",
    "DataSpec",
    "ModelSpec",
    "AdaptSpec",
    "TrainSpec",
    "EvalSpec",
    "ExportTarget",
    "CalibrationSpec",
    "VerifySpec",
    "TensorRTSpec",
    "LiteRTSpec",
    "CoreMLSpec",
    "PT2ESpec",
    "ExportSpec",
    "DistillSpec",
    "QuantizeStep",
    "PruneStep",
    "SparsityStep",
    "CompressStep",
    "STEP_KINDS",
    "CompressSpec",
    "RobustnessSpec",
    "BenchSection",
    "GatesSpec",
    "RemoteDevice",
    "SelectSpec",
    "SweepSpec",
    "TrackingSpec",
    "Recipe",
    "recipe_from_dict",
    "parse_target",
    "dotted_fields",
    "recipe_to_yaml",
    "apply_overrides",
    "MAX_VALUES",
    "MAX_BYTES",
    "load_recipe",
]
