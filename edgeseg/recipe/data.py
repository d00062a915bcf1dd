"""The ``data:`` section: datasets, augmentation, and the validation fold."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from edgeseg.limits import limit
from edgeseg.recipe._base import DATASET_NAMES, IMPORT_FORMAT_NAMES, MAX_CLASSES, Channel, Side, Size, _Strict

MAX_SYNTHETIC = limit("synthetic_images")


class SyntheticSpec(_Strict):
    """Size of the generated street-like dataset (used when ``dataset: synthetic``)."""

    num_train: int = Field(160, ge=1, le=MAX_SYNTHETIC)
    num_val: int = Field(40, ge=1, le=MAX_SYNTHETIC)
    height: Side = 128
    width: Side = 160


class AugmentSpec(_Strict):
    """Joint image/mask training augmentation (torchvision.transforms.v2)."""

    scale: tuple[float, float] = (0.5, 2.0)
    crop: Size | None = None
    hflip: bool = True
    color_jitter: float = Field(0.2, ge=0, le=1)
    blur: float = Field(0.0, ge=0, le=1)  # probability of a Gaussian blur (sigma 0.1-2 px): defocus, motion

    @field_validator("scale")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError("must be [min, max] with 0 < min <= max")
        return v


# Split names a recipe can evaluate on: the dataset's own splits and the validation fold that
# ``data.validation`` carves out of the training split (``edgeseg.data.splits``).
SPLIT_NAMES = ("train", "val", "test", "fold")


def _one_capture_group(pattern: str | None) -> str | None:
    if pattern is None:
        return None
    try:
        groups = re.compile(pattern).groups
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc})") from None
    if groups != 1:
        raise ValueError(f"needs exactly one capture group, the group name (e.g. '^([^_]+)_'), got {groups}")
    return pattern


class ValidationSpec(_Strict):
    """The images that select the model: early stopping, the best epoch, compression fine-tunes.

    ``split`` keeps the dataset's val split. The others carve a **group-disjoint** fold out of the
    training split (no group on both sides; groups come from ``data.group_pattern``): ``groups``
    names them, ``group_fraction`` takes groups in a seeded order while each brings the fold nearer
    ``fraction`` of the training images, ``group_kfold`` holds out fold ``fold`` of ``folds`` (groups balanced by
    image count, as scikit-learn's GroupKFold assigns them).
    """

    kind: Literal["split", "groups", "group_fraction", "group_kfold"] = "split"
    groups: list[str] = []
    fraction: float = Field(0.2, gt=0, lt=1)
    folds: int = Field(5, ge=2)
    fold: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> ValidationSpec:
        if (self.kind == "groups") != bool(self.groups):
            raise ValueError(
                "kind 'groups' needs data.validation.groups (the groups to hold out), and only it takes them"
            )
        if self.fold >= self.folds:
            raise ValueError(f"fold {self.fold} does not exist: folds are numbered 0..{self.folds - 1}")
        return self


def _check_import_format(dataset: str, fmt: str | None) -> None:
    from edgeseg.registry import did_you_mean

    names = ", ".join(IMPORT_FORMAT_NAMES)
    if (dataset == "import") != (fmt is not None):
        raise ValueError(f"data.format names the annotation format of dataset 'import' ({names}), and only it")
    if fmt is not None and fmt not in IMPORT_FORMAT_NAMES:
        raise ValueError(f"data.format: '{fmt}' is not one of {names}{did_you_mean(fmt, IMPORT_FORMAT_NAMES)}")


def _imported(root: str | None) -> bool:
    """Whether ``root`` holds the dataset.yaml ``edgeseg data import`` writes (its classes)."""
    from pathlib import Path

    return bool(root) and (Path(root) / "dataset.yaml").is_file()


class DataSpec(_Strict):
    """Where the images come from and how they are prepared."""

    dataset: Literal[DATASET_NAMES]
    root: str | None = None
    download: bool = False
    download_url: str | None = None
    # dataset import: the annotation format of data.root (edgeseg.data.imports' table)
    format: str | None = None
    class_names: list[str] | None = Field(None, min_length=1, max_length=MAX_CLASSES)
    palette: list[tuple[Channel, Channel, Channel]] | None = Field(None, max_length=MAX_CLASSES)
    ignore_index: int = Field(255, ge=0, le=255)
    image_size: Size | None = None
    train_fraction: float = Field(1.0, gt=0, le=1)
    on_bad_sample: Literal["error", "skip"] = "error"
    group_pattern: Annotated[str | None, AfterValidator(_one_capture_group)] = None
    validation: ValidationSpec = ValidationSpec()
    train_on: Literal["train", "train+val"] = "train"
    near_duplicate_bits: int = Field(8, ge=0, le=64)
    augment: AugmentSpec = AugmentSpec()
    synthetic: SyntheticSpec = SyntheticSpec()
    # A folder of unlabelled images from the target domain (the user's own camera): the build
    # then self-trains on them after fine-tuning (the `adapt` stage, settings in `adapt:`).
    unlabeled: str | None = None

    @model_validator(mode="after")
    def _dataset_needs(self) -> DataSpec:
        if self.dataset != "synthetic" and not self.root:
            raise ValueError(f"dataset '{self.dataset}' needs data.root (a directory)")
        _check_import_format(self.dataset, self.format)
        if self.dataset == "folder" and not self.class_names and not _imported(self.root):
            raise ValueError(
                "dataset 'folder' needs data.class_names (one name per class id), or a dataset.yaml in data.root "
                "(edgeseg data import writes one)"
            )
        if self.train_on == "train+val" and self.validation.kind == "split":
            raise ValueError(
                "data.train_on: train+val trains on the val split, leaving nothing to select on: carve a "
                "group-disjoint fold with data.validation.kind (groups, group_fraction or group_kfold)"
            )
        if self.palette and self.class_names and len(self.palette) != len(self.class_names):
            raise ValueError(
                f"data.palette has {len(self.palette)} colours but data.class_names has "
                f"{len(self.class_names)} names: give one colour per class"
            )
        return self
