"""The dataset table: each dataset's facts (classes, palette, native size) and its loader."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeseg.data.colours import default_palette
from edgeseg.data.samples import Samples, decode_pairs
from edgeseg.recipe import DataSpec
from edgeseg.registry import lookup


@dataclass(frozen=True)
class DatasetInfo:
    """What a model trained on this dataset needs to know about its labels."""

    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    native_size: tuple[int, int] | None  # (H, W) when every image has it
    group_pattern: str | None = None  # a regex whose one capture group is the file's group (a sequence)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _info_synthetic(spec: DataSpec) -> DatasetInfo:
    from edgeseg.data import synthetic

    return DatasetInfo(synthetic.CLASS_NAMES, synthetic.PALETTE, (spec.synthetic.height, spec.synthetic.width))


def _info_camvid(spec: DataSpec) -> DatasetInfo:
    from edgeseg.data import camvid

    return DatasetInfo(camvid.CLASS_NAMES, camvid.PALETTE, camvid.NATIVE_SIZE, camvid.GROUP_PATTERN)


def _info_folder(spec: DataSpec) -> DatasetInfo:
    from edgeseg.data.folder import imported

    facts = imported(spec.root) or {}  # what `edgeseg data import` recorded; the recipe wins
    names = tuple(spec.class_names or facts.get("class_names", ()))
    given = spec.palette or facts.get("palette")
    palette = tuple(tuple(c) for c in given) if given else default_palette(len(names))
    return DatasetInfo(names, palette, None, facts.get("group_pattern"))


def _info_voc(spec: DataSpec) -> DatasetInfo:
    from edgeseg.data.torchvision_sets import VOC_CLASSES, voc_palette

    return DatasetInfo(VOC_CLASSES, tuple(voc_palette()), None)


def _info_cityscapes(spec: DataSpec) -> DatasetInfo:
    from edgeseg.data.torchvision_sets import CITYSCAPES_GROUP_PATTERN, cityscapes_classes

    classes = cityscapes_classes()
    return DatasetInfo(
        tuple(c.name for c in classes), tuple(c.color for c in classes), (1024, 2048), CITYSCAPES_GROUP_PATTERN
    )


def _load_synthetic(spec: DataSpec, split: str, seed: int) -> Samples:
    from edgeseg.data import synthetic

    s = spec.synthetic
    count = s.num_train if split == "train" else s.num_val
    scenes = synthetic.generate(seed, split, count, s.height, s.width)
    return Samples(
        images=[img for img, _ in scenes],
        masks=[mask for _, mask in scenes],
        names=[f"{split}_{i:05d}" for i in range(count)],
    )


def _load_camvid(spec: DataSpec, split: str, seed: int) -> Samples:
    from edgeseg.data import camvid

    refs = camvid.pairs(Path(spec.root), split, download=spec.download, url=spec.download_url)
    return decode_pairs(
        refs, num_classes=11, label_map=camvid.label_map, on_bad_sample=spec.on_bad_sample, what=f"camvid/{split}"
    )


def _load_folder(spec: DataSpec, split: str, seed: int) -> Samples:
    from edgeseg.data import folder

    refs = folder.pairs(Path(spec.root), split)
    return decode_pairs(
        refs,
        num_classes=_info_folder(spec).num_classes,
        label_map=folder.label_map(spec.palette, spec.ignore_index),
        on_bad_sample=spec.on_bad_sample,
        what=f"{spec.root}/{split}",
    )


def _load_voc(spec: DataSpec, split: str, seed: int) -> Samples:
    from edgeseg.data import torchvision_sets as tvs

    refs = tvs.voc_pairs(Path(spec.root), split, download=spec.download)
    return decode_pairs(
        refs, num_classes=21, label_map=tvs.voc_label_map, on_bad_sample=spec.on_bad_sample, what=f"voc/{split}"
    )


def _load_cityscapes(spec: DataSpec, split: str, seed: int) -> Samples:
    from edgeseg.data import torchvision_sets as tvs

    refs = tvs.cityscapes_pairs(Path(spec.root), split)
    return decode_pairs(
        refs,
        num_classes=19,
        label_map=tvs.cityscapes_label_map(),
        on_bad_sample=spec.on_bad_sample,
        what=f"cityscapes/{split}",
    )


def _imported_spec(spec: DataSpec) -> DataSpec:
    """``dataset: import``: the same spec over the folder the source was imported into (once)."""
    from edgeseg.data.imports import cached_import

    return spec.model_copy(update={"dataset": "folder", "root": str(cached_import(Path(spec.root), spec.format))})


def _info_import(spec: DataSpec) -> DatasetInfo:
    return _info_folder(_imported_spec(spec))


def _load_import(spec: DataSpec, split: str, seed: int) -> Samples:
    return _load_folder(_imported_spec(spec), split, seed)


@dataclass(frozen=True)
class DatasetEntry:
    info: Callable[[DataSpec], DatasetInfo]
    load: Callable[[DataSpec, str, int], Samples]


DATASETS: dict[str, DatasetEntry] = {
    "synthetic": DatasetEntry(_info_synthetic, _load_synthetic),
    "camvid": DatasetEntry(_info_camvid, _load_camvid),
    "folder": DatasetEntry(_info_folder, _load_folder),
    "voc": DatasetEntry(_info_voc, _load_voc),
    "cityscapes": DatasetEntry(_info_cityscapes, _load_cityscapes),
    "import": DatasetEntry(_info_import, _load_import),
}


def dataset_info(spec: DataSpec) -> DatasetInfo:
    return lookup(DATASETS, spec.dataset, "dataset").info(spec)
