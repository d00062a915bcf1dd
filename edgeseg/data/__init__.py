"""Datasets: every loader yields decoded, validated uint8 tensors held in memory.

``DATASETS`` maps a recipe's ``data.dataset`` to a loader. ``dataset_info`` gives the class
names, palette and native size without reading any image; ``load_split`` decodes a split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeseg.data.samples import Samples, decode_pairs
from edgeseg.errors import DataError
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


def _default_palette(n: int) -> tuple[tuple[int, int, int], ...]:
    from edgeseg.data.torchvision_sets import voc_palette

    base = voc_palette()
    return tuple(base[(i % (len(base) - 1)) + 1] for i in range(n))


def _info_synthetic(spec: DataSpec) -> DatasetInfo:
    from edgeseg.data import synthetic

    return DatasetInfo(synthetic.CLASS_NAMES, synthetic.PALETTE, (spec.synthetic.height, spec.synthetic.width))


def _info_camvid(spec: DataSpec) -> DatasetInfo:
    from edgeseg.data import camvid

    return DatasetInfo(camvid.CLASS_NAMES, camvid.PALETTE, camvid.NATIVE_SIZE, camvid.GROUP_PATTERN)


def _info_folder(spec: DataSpec) -> DatasetInfo:
    names = tuple(spec.class_names or ())
    palette = tuple(spec.palette) if spec.palette else _default_palette(len(names))
    return DatasetInfo(names, palette, None)


def _info_voc(spec: DataSpec) -> DatasetInfo:
    from edgeseg.data.torchvision_sets import VOC_CLASSES, voc_palette

    return DatasetInfo(VOC_CLASSES, tuple(voc_palette()), None)


def _info_cityscapes(spec: DataSpec) -> DatasetInfo:
    from edgeseg.data.torchvision_sets import cityscapes_classes

    classes = cityscapes_classes()
    # the city: aachen_000000_000019_leftImg8bit (Cityscapes' splits are city-disjoint by design)
    return DatasetInfo(tuple(c.name for c in classes), tuple(c.color for c in classes), (1024, 2048), r"^([a-z]+)_")


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
        num_classes=len(spec.class_names or ()),
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
}


def dataset_info(spec: DataSpec) -> DatasetInfo:
    return lookup(DATASETS, spec.dataset, "dataset").info(spec)


def load_split(spec: DataSpec, split: str, seed: int = 0, *, arrays: bool = False) -> Samples:
    """Decode ``split`` of the recipe's dataset into memory (validated; see ``decode_pairs``).

    ``split`` is a dataset split or ``fold``, the validation fold ``data.validation`` carves out
    of the training split (``edgeseg.data.splits``); ``train`` then excludes it. Images come as
    torch uint8 [3,H,W] tensors, or with ``arrays`` as numpy [H,W,3] arrays (no torch import:
    what ``edgeseg bench`` uses on a device without the training stack).
    ``data.train_fraction`` < 1 keeps a seeded random subset of the training split.
    """
    from edgeseg.data.splits import FOLD

    if spec.root and spec.dataset != "synthetic" and not spec.download and not Path(spec.root).exists():
        raise DataError(f"{spec.root}: data.root does not exist (check the path or the variable it uses)")
    if split == FOLD and spec.validation.kind == "split":
        raise DataError("split 'fold' exists only when data.validation carves one (kind groups, group_fraction...)")
    samples = lookup(DATASETS, spec.dataset, "dataset").load(spec, "train" if split == FOLD else split, seed)
    if split in ("train", FOLD) and spec.validation.kind != "split":
        samples = _carve(spec, samples, seed, fold=split == FOLD)
    if split == "train" and spec.train_fraction < 1:
        samples = _subset(spec, samples, spec.train_fraction, seed)
    return samples if arrays else _as_tensors(samples)


def load_training(spec: DataSpec, seed: int = 0, *, arrays: bool = False) -> Samples:
    """Every image the model is fitted on: ``train``, and ``val`` under ``train_on: train+val``."""
    from edgeseg.data.splits import training_splits

    parts = [load_split(spec, split, seed, arrays=arrays) for split in training_splits(spec)]
    return Samples(
        [x for p in parts for x in p.images],
        [x for p in parts for x in p.masks],
        [x for p in parts for x in p.names],
        [x for p in parts for x in p.skipped],
    )


def _carve(spec: DataSpec, samples: Samples, seed: int, *, fold: bool) -> Samples:
    """The fold's groups (``fold``) or the rest of the training split."""
    from edgeseg.data.splits import fold_groups, group_pattern, groups_of

    groups = groups_of(samples.names, group_pattern(spec), f"{spec.root or spec.dataset}/train")
    if groups is None:
        raise DataError(
            f"data.validation.kind {spec.validation.kind}: dataset '{spec.dataset}' has no built-in groups; "
            "set data.group_pattern (a regex whose capture group is the sequence/patient/camera in each file name)"
        )
    held = fold_groups(spec, groups, seed)
    return _keep(samples, [i for i, g in enumerate(groups) if (g in held) == fold])


def _as_tensors(samples: Samples) -> Samples:
    import torch

    return Samples(
        [torch.from_numpy(image).permute(2, 0, 1).contiguous() for image in samples.images],
        [torch.from_numpy(mask) for mask in samples.masks],
        samples.names,
        samples.skipped,
    )


def _keep(samples: Samples, keep: list[int]) -> Samples:
    return Samples(
        [samples.images[i] for i in keep],
        [samples.masks[i] for i in keep],
        [samples.names[i] for i in keep],
        samples.skipped,
    )


def _subset(spec: DataSpec, samples: Samples, fraction: float, seed: int) -> Samples:
    """``fraction`` of the training images, seeded.

    Where the data has groups (video sequences), each group keeps a contiguous run of its frames
    in name order, from a seeded start: less footage, as a smaller dataset would be. A random
    10% of a video's frames would still show nearly every scene of it (neighbouring frames look
    alike) and overstate how much data the fraction is. Without groups, a seeded random subset.
    """
    import torch

    from edgeseg.data.splits import group_pattern, groups_of

    generator = torch.Generator().manual_seed(seed)
    groups = groups_of(samples.names, group_pattern(spec), f"{spec.root or spec.dataset}/train")
    if groups is None:
        n = max(1, round(len(samples) * fraction))
        return _keep(samples, sorted(torch.randperm(len(samples), generator=generator)[:n].tolist()))
    keep = []
    for group in dict.fromkeys(groups):
        members = sorted((i for i, g in enumerate(groups) if g == group), key=lambda i: samples.names[i])
        n = max(1, round(len(members) * fraction))
        start = int(torch.randint(len(members) - n + 1, (1,), generator=generator))
        keep += members[start : start + n]
    return _keep(samples, sorted(keep))
