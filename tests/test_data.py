"""Every loader, every bad-data case, the download path and the joint transforms."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgeseg.data import dataset_info, load_split
from edgeseg.data.samples import IGNORE
from edgeseg.errors import DataError
from edgeseg.recipe import AugmentSpec, DataSpec

from conftest import CAMVID, needs_camvid


def save_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)
    return path


def make_folder_dataset(root: Path, n: int = 3, size=(24, 32), num_classes: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(n):
            save_png(root / split / "images" / f"img{i}.png", rng.integers(0, 255, (*size, 3), dtype=np.uint8))
            save_png(root / split / "masks" / f"img{i}.png", rng.integers(0, num_classes, size, dtype=np.uint8))
    return root


# --- synthetic -------------------------------------------------------------------------------


def test_synthetic_is_deterministic_and_exact():
    spec = DataSpec(dataset="synthetic", synthetic={"num_train": 4, "num_val": 2, "height": 48, "width": 64})
    a, b = load_split(spec, "train", seed=3), load_split(spec, "train", seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.images, b.images, strict=True))
    assert all(torch.equal(x, y) for x, y in zip(a.masks, b.masks, strict=True))
    other = load_split(spec, "train", seed=4)
    assert not torch.equal(a.images[0], other.images[0])
    val = load_split(spec, "val", seed=3)
    assert len(val) == 2 and not torch.equal(val.images[0], a.images[0])
    info = dataset_info(spec)
    assert a.images[0].shape == (3, 48, 64) and a.images[0].dtype == torch.uint8
    masks = torch.stack(a.masks)
    assert int(masks.max()) < info.num_classes
    assert len(torch.unique(masks)) >= 5  # a street scene, not a blank canvas


# --- camvid ----------------------------------------------------------------------------------


@needs_camvid
def test_camvid_real_val_split():
    spec = DataSpec(dataset="camvid", root=str(CAMVID))
    samples = load_split(spec, "val")
    assert len(samples) == 101
    assert samples.images[0].shape == (3, 360, 480)
    values = torch.unique(torch.cat([m.flatten() for m in samples.masks]))
    assert set(values.tolist()) <= set(range(11)) | {IGNORE}  # void 11 became the ignore index
    assert IGNORE in values.tolist()
    assert dataset_info(spec).num_classes == 11


def test_camvid_missing_without_download(tmp_path):
    spec = DataSpec(dataset="camvid", root=str(tmp_path))
    with pytest.raises(DataError, match=r"val\.txt: CamVid split 'val' not found .*data\.download: true"):
        load_split(spec, "val")


@pytest.fixture
def camvid_server(tmp_path):
    """A loopback HTTP server serving a copy of the real CamVid folder (or of a tampered one)."""
    servers = []

    def serve(directory: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server in servers:
        server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@needs_camvid
def test_camvid_download_verifies_and_loads(tmp_path, camvid_server):
    url = camvid_server(CAMVID)
    root = tmp_path / "camvid"
    spec = DataSpec(dataset="camvid", root=str(root), download=True, download_url=url)
    samples = load_split(spec, "val")
    assert len(samples) == 101
    assert (root / "val.txt").is_file() and not list(root.glob(".download.*"))


@needs_camvid
def test_camvid_download_rejects_a_bad_checksum(tmp_path, camvid_server):
    mirror = tmp_path / "mirror"
    shutil.copytree(CAMVID / "valannot", mirror / "valannot")
    shutil.copytree(CAMVID / "val", mirror / "val")
    shutil.copy(CAMVID / "val.txt", mirror / "val.txt")
    tampered = sorted((mirror / "val").iterdir())[5]
    tampered.write_bytes(tampered.read_bytes() + b"x")
    root = tmp_path / "camvid"
    spec = DataSpec(dataset="camvid", root=str(root), download=True, download_url=camvid_server(mirror))
    with pytest.raises(DataError, match=rf"{tampered.name}: checksum mismatch"):
        load_split(spec, "val")
    assert not (root / "val.txt").exists()  # nothing half-downloaded is published
    assert [p.name for p in root.iterdir()] == []


# --- folder ----------------------------------------------------------------------------------


def test_folder_index_masks(tmp_path):
    root = make_folder_dataset(tmp_path / "ds")
    spec = DataSpec(dataset="folder", root=str(root), class_names=["a", "b", "c"])
    samples = load_split(spec, "train")
    assert len(samples) == 3 and samples.masks[0].shape == (24, 32)
    assert dataset_info(spec).class_names == ("a", "b", "c")


def test_folder_rgb_palette_masks(tmp_path):
    palette = [(0, 0, 0), (255, 0, 0), (0, 255, 0)]
    ids = np.array([[0, 1, 2, 1]] * 4, dtype=np.uint8)
    rgb = np.array(palette, dtype=np.uint8)[ids]
    for split in ("train", "val"):
        save_png(tmp_path / split / "images" / "a.png", np.zeros((4, 4, 3), np.uint8))
        save_png(tmp_path / split / "masks" / "a.png", rgb)
    spec = DataSpec(dataset="folder", root=str(tmp_path), class_names=["bg", "red", "green"], palette=palette)
    assert torch.equal(load_split(spec, "train").masks[0], torch.from_numpy(ids))
    rgb[0, 0] = (9, 9, 9)
    save_png(tmp_path / "train" / "masks" / "a.png", rgb)
    with pytest.raises(
        DataError, match=r"a\.png: 1 pixels have colours not in data\.palette, e\.g\. \(9, 9, 9\) at x=0, y=0"
    ):
        load_split(spec, "train")


def test_folder_ignore_index_maps_to_ignore(tmp_path):
    root = make_folder_dataset(tmp_path / "ds")
    mask_path = root / "train" / "masks" / "img0.png"
    mask = np.array(Image.open(mask_path))
    mask[0, :] = 7
    save_png(mask_path, mask)
    spec = DataSpec(dataset="folder", root=str(root), class_names=["a", "b", "c"], ignore_index=7)
    assert (load_split(spec, "train").masks[0][0] == IGNORE).all()


# --- bad data --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage, message",
    [
        ("no_mask", r"img1\.png: image has no mask"),
        ("size", r"masks/img1\.png: mask is 16x24 but its image img1\.png is 32x24 \(WxH\)"),
        ("label", r"masks/img1\.png: label values \[9\] are outside \[0, 3\) and not the ignore index"),
        ("corrupt", r"images/img1\.png: cannot read image"),
    ],
)
def test_bad_samples_fail_naming_the_file_or_are_skipped(tmp_path, damage, message):
    root = make_folder_dataset(tmp_path / "ds")
    image, mask = root / "train" / "images" / "img1.png", root / "train" / "masks" / "img1.png"
    if damage == "no_mask":
        mask.unlink()
    elif damage == "size":
        save_png(mask, np.zeros((24, 16), np.uint8))
    elif damage == "label":
        save_png(mask, np.full((24, 32), 9, np.uint8))
    elif damage == "corrupt":
        image.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    spec = DataSpec(dataset="folder", root=str(root), class_names=["a", "b", "c"])
    with pytest.raises(DataError, match=message):
        load_split(spec, "train")
    skipped = load_split(spec.model_copy(update={"on_bad_sample": "skip"}), "train")
    assert len(skipped) == 2 and len(skipped.skipped) == 1
    assert "img1" not in skipped.names


def test_missing_root_is_named(tmp_path):
    spec = DataSpec(dataset="folder", root=str(tmp_path / "nowhere"), class_names=["a"])
    with pytest.raises(DataError, match="nowhere: data.root does not exist"):
        load_split(spec, "train")


# --- torchvision datasets --------------------------------------------------------------------


def test_voc_layout_through_torchvision(tmp_path):
    base = tmp_path / "VOCdevkit" / "VOC2012"
    (base / "ImageSets" / "Segmentation").mkdir(parents=True)
    (base / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_000032\n")
    save_png(base / "JPEGImages" / "2007_000032.jpg", np.zeros((20, 30, 3), np.uint8))
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 5:10] = 15  # person
    mask[4, :] = 255  # object border
    indexed = Image.fromarray(mask, mode="P")
    indexed.putpalette([v for c in dataset_info(DataSpec(dataset="voc", root="x")).palette for v in c])
    (base / "SegmentationClass").mkdir()
    indexed.save(base / "SegmentationClass" / "2007_000032.png")
    samples = load_split(DataSpec(dataset="voc", root=str(tmp_path)), "train")
    assert samples.masks[0][7, 7] == 15 and samples.masks[0][4, 0] == IGNORE
    assert dataset_info(DataSpec(dataset="voc", root="x")).num_classes == 21


def test_cityscapes_layout_maps_label_ids_to_train_ids(tmp_path):
    city = "aachen"
    save_png(
        tmp_path / "leftImg8bit" / "val" / city / f"{city}_000000_000019_leftImg8bit.png",
        np.zeros((16, 32, 3), np.uint8),
    )
    label_ids = np.zeros((16, 32), np.uint8)
    label_ids[:, :8] = 7  # road -> train id 0
    label_ids[:, 8:16] = 26  # car -> train id 13
    label_ids[:, 16:] = 1  # ego vehicle -> ignore
    save_png(tmp_path / "gtFine" / "val" / city / f"{city}_000000_000019_gtFine_labelIds.png", label_ids)
    samples = load_split(DataSpec(dataset="cityscapes", root=str(tmp_path)), "val")
    mask = samples.masks[0]
    assert mask[0, 0] == 0 and mask[0, 10] == 13 and mask[0, 20] == IGNORE
    info = dataset_info(DataSpec(dataset="cityscapes", root="x"))
    assert info.num_classes == 19
    from edgeseg.data.splits import groups_of

    assert groups_of(samples.names, info.group_pattern, "val") == ["aachen"]  # groups are cities


def test_train_fraction_keeps_a_contiguous_run_of_each_group():
    # synthetic names end in a 5-digit index: groups of ten consecutive frames, "0000", "0001", ...
    spec = DataSpec(
        dataset="synthetic",
        group_pattern=r"_(\d{4})\d$",
        train_fraction=0.3,
        synthetic={"num_train": 30, "num_val": 2, "height": 32, "width": 32},
    )
    a, b = load_split(spec, "train", seed=1), load_split(spec, "train", seed=1)
    assert a.names == b.names and len(a) == 9
    index = [int(name[-5:]) for name in a.names]
    for group in range(3):  # three frames of each group, consecutive
        run = [i for i in index if i // 10 == group]
        assert len(run) == 3 and run == list(range(run[0], run[0] + 3))


def test_train_fraction_keeps_a_seeded_subset():
    spec = DataSpec(
        dataset="synthetic", train_fraction=0.25, synthetic={"num_train": 20, "num_val": 2, "height": 32, "width": 32}
    )
    a, b = load_split(spec, "train", seed=1), load_split(spec, "train", seed=1)
    assert len(a) == 5 and a.names == b.names


# --- transforms ------------------------------------------------------------------------------


def test_train_transform_crops_and_pads_with_ignore():
    from edgeseg.data.transforms import SegmentationDataset, train_transform

    spec = DataSpec(dataset="synthetic", synthetic={"num_train": 4, "num_val": 1, "height": 40, "width": 48})
    samples = load_split(spec, "train")
    torch.manual_seed(0)
    # Scale down to half: the 32x64 crop must be padded, and padding is ignore.
    dataset = SegmentationDataset(
        samples, train_transform(AugmentSpec(scale=(0.5, 0.5), crop=(32, 64)), (32, 64), (40, 48))
    )
    image, mask = dataset[0]
    assert image.shape == (3, 32, 64) and mask.shape == (32, 64)
    assert image.dtype == torch.uint8
    assert (mask == IGNORE).any()
    assert set(torch.unique(mask).tolist()) <= set(range(8)) | {IGNORE}
