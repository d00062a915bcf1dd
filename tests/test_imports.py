"""``edgeseg data import``: each annotation format, written by its own tools where they exist
(pycocotools' RLE encoder, label-studio-converter's brush encoder), imported, exact pixels checked.

Every source draws the same scene on a 48x40 image: a large "road" region (rows 24-39) and a
small "car" (rows 28-33, cols 10-19) drawn over it, so overlap order is visible in the pixels.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from edgeseg.data.imports import FORMAT_NAMES, IMPORT_FORMATS, import_dataset
from edgeseg.errors import DataError, UnknownNameError

H, W = 40, 48
ROAD = [0, 24, 48, 24, 48, 40, 0, 40]  # x, y pairs: rows 24-39, every column
CAR = [10, 28, 20, 28, 20, 34, 10, 34]  # rows 28-33, cols 10-19 (pycocotools fills half-open)


def expected(road: int, car: int, uncovered: int = 255) -> np.ndarray:
    mask = np.full((H, W), uncovered, np.uint8)
    mask[24:40, :] = road
    mask[28:34, 10:20] = car
    return mask


def photo(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)
    return path


def mask_of(out: Path, split: str, name: str) -> np.ndarray:
    return np.asarray(Image.open(out / split / "masks" / f"{name}.png"))


def car_rle() -> dict:
    from pycocotools import mask as coco_mask

    car = np.zeros((H, W), np.uint8, order="F")
    car[28:34, 10:20] = 1
    rle = coco_mask.encode(car)
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def coco_source(root: Path, annotations: list[dict] | None = None) -> Path:
    """CVAT's COCO layout: annotations/instances_default.json and images/; category ids 3 and 7."""
    photo(root / "images" / "a.png")
    photo(root / "images" / "empty.png", 1)
    crowd = {"size": [H, W], "counts": [2 * H, 4, H - 4, 4, H * (W - 3) - 4]}  # column-major: cols 2-3, rows 0-3
    document = {
        "images": [{"id": 1, "file_name": "a.png", "height": H, "width": W}, {"id": 2, "file_name": "empty.png"}],
        "categories": [{"id": 7, "name": "car"}, {"id": 3, "name": "road"}],
        "annotations": annotations
        or [  # the car first: the rule, not the order, puts it on top
            {"id": 10, "image_id": 1, "category_id": 7, "segmentation": car_rle(), "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 3, "segmentation": [ROAD], "iscrowd": 0},
            {"id": 12, "image_id": 1, "category_id": 7, "segmentation": crowd, "iscrowd": 1},
        ],
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances_default.json").write_text(json.dumps(document))
    return root


def test_the_format_table_is_what_the_cli_offers():
    from typer.testing import CliRunner

    from edgeseg.cli import app
    from edgeseg.recipe import IMPORT_FORMAT_NAMES

    assert FORMAT_NAMES == tuple(IMPORT_FORMATS) == IMPORT_FORMAT_NAMES and len(FORMAT_NAMES) == 7
    result = CliRunner().invoke(app, ["data", "import", "x", "--format", "cocoo", "--out", "y"])
    assert result.exit_code == 2 and "did you mean 'coco'" in result.output
    with pytest.raises(UnknownNameError):
        import_dataset(Path("x"), "yolo", Path("y"))


def test_coco_polygons_rle_crowd_and_ids_become_contiguous(tmp_path):
    dataset = import_dataset(coco_source(tmp_path / "coco"), "coco", tmp_path / "out")
    # categories sorted by their COCO id (3 road, 7 car), renumbered 0, 1; the ids recorded
    assert dataset["class_names"] == ["road", "car"]
    assert dataset["class_ids"] == {"road": {"id": 0, "source_id": 3}, "car": {"id": 1, "source_id": 7}}
    want = expected(road=0, car=1)
    want[0:4, 2:4] = 255  # the crowd region is ignored
    assert np.array_equal(mask_of(tmp_path / "out", "train", "a"), want)
    assert dataset["splits"]["train"]["unannotated"] == ["empty"]  # reported, not trained on
    assert not (tmp_path / "out" / "train" / "images" / "empty.png").exists()
    written = yaml.safe_load((tmp_path / "out" / "dataset.yaml").read_text())
    assert written["source"]["library"].startswith("pycocotools") and written["ignore_index"] == 255


def test_background_class_fills_what_no_shape_covers(tmp_path):
    dataset = import_dataset(coco_source(tmp_path / "coco"), "coco", tmp_path / "out", background="background")
    assert dataset["class_names"] == ["background", "road", "car"]
    want = expected(road=1, car=2, uncovered=0)
    want[0:4, 2:4] = 255
    assert np.array_equal(mask_of(tmp_path / "out", "train", "a"), want)


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        ({"id": 5, "image_id": 1, "category_id": 9, "segmentation": [CAR]}, "annotation 5: category_id 9 is not"),
        ({"id": 6, "image_id": 1, "category_id": 3, "segmentation": [[1, 2, 3, 4]]}, "annotation 6: a polygon needs"),
        ({"id": 8, "image_id": 1, "category_id": 3, "bbox": [0, 0, 4, 4]}, "annotation 8: no segmentation"),
    ],
)
def test_bad_coco_is_one_line_naming_the_annotation_and_writes_nothing(tmp_path, annotation, message):
    from typer.testing import CliRunner

    from edgeseg.cli import app

    src = coco_source(tmp_path / "coco", [annotation])
    result = CliRunner().invoke(app, ["data", "import", str(src), "--format", "coco", "--out", str(tmp_path / "out")])
    assert result.exit_code == 4 and message in result.output and "instances_default.json" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["coco"]


def test_an_unused_label_map_class_is_an_error_naming_both(tmp_path):
    src = coco_source(tmp_path / "coco", [{"id": 1, "image_id": 1, "category_id": 3, "segmentation": [ROAD]}])
    with pytest.raises(DataError, match=r"lists 'car' but no annotation uses it.*--keep-empty-classes"):
        import_dataset(src, "coco", tmp_path / "out")
    dataset = import_dataset(src, "coco", tmp_path / "out", keep_empty_classes=True)
    assert dataset["class_names"] == ["road", "car"] and dataset["pixel_share"]["car"] == 0


def cvat_mask_source(root: Path, colours: dict[str, tuple[int, int, int]]) -> Path:
    """CVAT's "Segmentation mask 1.1" export as CVAT writes it."""
    lines = ["# label:color_rgb:parts:actions"] + [f"{n}:{r},{g},{b}::" for n, (r, g, b) in colours.items()]
    root.mkdir(parents=True)
    (root / "labelmap.txt").write_text("\n".join(lines) + "\n")
    photo(root / "JPEGImages" / "frame_000001.jpg")
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[24:40, :] = colours["road"]
    rgb[28:34, 10:20] = colours["car"]
    (root / "SegmentationClass").mkdir()
    Image.fromarray(rgb).save(root / "SegmentationClass" / "frame_000001.png")
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "default.txt").write_text("frame_000001\n")
    return root


def test_cvat_mask_colours_follow_labelmap_and_unknown_colours_are_named(tmp_path):
    colours = {"background": (0, 0, 0), "road": (128, 64, 128), "car": (0, 0, 142)}
    dataset = import_dataset(cvat_mask_source(tmp_path / "cvat", colours), "cvat-mask", tmp_path / "out")
    assert dataset["class_names"] == ["background", "road", "car"]
    assert dataset["palette"] == [[0, 0, 0], [128, 64, 128], [0, 0, 142]]
    assert np.array_equal(mask_of(tmp_path / "out", "train", "frame_000001"), expected(1, 2, uncovered=0))
    bad = cvat_mask_source(tmp_path / "bad", colours)
    (bad / "labelmap.txt").write_text("background:0,0,0::\nroad:128,64,128::\n")
    with pytest.raises(DataError, match=r"frame_000001.png: colour \(0, 0, 142\) at x=10, y=28 is not in .*labelmap"):
        import_dataset(bad, "cvat-mask", tmp_path / "out2")
    with pytest.raises(DataError, match="applies to polygon formats only"):
        import_dataset(bad, "cvat-mask", tmp_path / "out2", background="bg")
    # no colours in labelmap.txt (Datumaro without a colormap): VOC's colour of each index
    plain = cvat_mask_source(tmp_path / "plain", {"background": (0, 0, 0), "road": (128, 0, 0), "car": (0, 128, 0)})
    (plain / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:::\nroad:::\ncar:::\n")
    import_dataset(plain, "cvat-mask", tmp_path / "out3")
    assert np.array_equal(mask_of(tmp_path / "out3", "train", "frame_000001"), expected(1, 2, uncovered=0))


def test_voc_palette_pngs_keep_the_standard_classes_and_ignore_borders(tmp_path):
    from edgeseg.data.torchvision_sets import voc_palette

    root = tmp_path / "VOC"
    photo(root / "JPEGImages" / "2007_000032.jpg")
    index = expected(road=7, car=7)  # VOC's class 7 is car
    index[23, :] = 255  # an object border
    index[:23, :] = 0
    palette_png = Image.frombytes("P", (W, H), index.tobytes())
    palette_png.putpalette([v for rgb in voc_palette() for v in rgb])
    (root / "SegmentationClass").mkdir()
    palette_png.save(root / "SegmentationClass" / "2007_000032.png")
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000032\n")
    dataset = import_dataset(root, "voc", tmp_path / "out")
    assert len(dataset["class_names"]) == 21 and dataset["class_names"][7] == "car"
    assert np.array_equal(mask_of(tmp_path / "out", "val", "2007_000032"), index)


def test_cityscapes_label_ids_become_train_ids_grouped_by_city(tmp_path):
    root = tmp_path / "cityscapes"
    stem = "aachen_000000_000019"
    photo(root / "leftImg8bit" / "train" / "aachen" / f"{stem}_leftImg8bit.png")
    ids = expected(road=7, car=26, uncovered=0)  # labelIds: 7 road, 26 car, 0 unlabeled
    (root / "gtFine" / "train" / "aachen").mkdir(parents=True)
    Image.fromarray(ids).save(root / "gtFine" / "train" / "aachen" / f"{stem}_gtFine_labelIds.png")
    dataset = import_dataset(root, "cityscapes", tmp_path / "out")
    assert np.array_equal(mask_of(tmp_path / "out", "train", stem), expected(road=0, car=13))  # trainIds
    assert dataset["group_pattern"] == "^([a-z]+)_" and dataset["class_ids"]["car"] == {"id": 13, "source_id": 26}


def test_labelme_draws_later_shapes_on_top_and_names_a_bad_shape(tmp_path):
    root = tmp_path / "labelme"
    photo(root / "a.png")
    shapes = [
        {"label": "car", "points": [[10, 28], [20, 34]], "shape_type": "rectangle"},
        {"label": "road", "points": np.reshape(ROAD, (-1, 2)).tolist(), "shape_type": "polygon"},
    ]
    document = {"shapes": shapes[::-1], "imagePath": "a.png", "imageHeight": H, "imageWidth": W}
    (root / "a.json").write_text(json.dumps(document))
    dataset = import_dataset(root, "labelme", tmp_path / "out")
    assert dataset["class_names"] == ["car", "road"]
    assert np.array_equal(mask_of(tmp_path / "out", "train", "a"), expected(road=1, car=0))
    document["shapes"].append({"label": "car", "points": [[1, 1], [2, 2]], "shape_type": "polygon"})
    (root / "a.json").write_text(json.dumps(document))
    with pytest.raises(DataError, match=r"a.json shape 2 \('car'\): a polygon needs at least 3 points"):
        import_dataset(root, "labelme", tmp_path / "out2")


def test_yolo_polygons_in_fractions_and_images_without_labels_are_reported(tmp_path):
    root = tmp_path / "yolo"
    root.mkdir()
    (root / "data.yaml").write_text(yaml.safe_dump({"names": {0: "road", 1: "car"}}))
    photo(root / "images" / "val" / "a.png")
    photo(root / "images" / "val" / "b.png")

    def fractions(points):
        return " ".join(f"{v / (W if i % 2 == 0 else H):.6f}" for i, v in enumerate(points))

    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "val" / "a.txt").write_text(f"1 {fractions(CAR)}\n0 {fractions(ROAD)}\n")
    dataset = import_dataset(root, "yolo-seg", tmp_path / "out")
    assert np.array_equal(mask_of(tmp_path / "out", "val", "a"), expected(road=0, car=1))
    assert dataset["splits"]["val"]["unannotated"] == ["b"]
    (root / "labels" / "val" / "b.txt").write_text("2 0 0 1 0 1 1\n")
    with pytest.raises(DataError, match=r"b.txt:1: class 2 is not in data.yaml's names \(0-1\)"):
        import_dataset(root, "yolo-seg", tmp_path / "out2")


def test_label_studio_brush_rle_and_percent_polygons(tmp_path):
    from label_studio_converter import brush

    root = tmp_path / "ls"
    photo(root / "images" / "a.png")
    car = np.zeros((H, W), np.uint8)
    car[28:34, 10:20] = 255
    road_percent = [[100 * x / W, 100 * y / H] for x, y in np.reshape(ROAD, (-1, 2))]
    results = [
        {"id": "r", "type": "polygonlabels", "value": {"points": road_percent, "polygonlabels": ["road"]}},
        {
            "id": "c",
            "type": "brushlabels",
            "original_height": H,
            "original_width": W,
            "value": {"format": "rle", "rle": brush.mask2rle(car), "brushlabels": ["car"]},
        },
    ]
    tasks = [{"id": 1, "data": {"image": "/data/upload/1/a.png"}, "annotations": [{"result": results}]}]
    (root / "export.json").write_text(json.dumps(tasks))
    dataset = import_dataset(root, "label-studio", tmp_path / "out")
    assert dataset["class_names"] == ["car", "road"]
    assert np.array_equal(mask_of(tmp_path / "out", "train", "a"), expected(road=1, car=0))


def test_exif_rotated_photos_are_stored_as_the_annotation_tool_showed_them(tmp_path):
    root = coco_source(tmp_path / "coco")
    stored = np.random.default_rng(0).integers(0, 255, (W, H, 3), dtype=np.uint8)  # 40 wide, 48 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show: 48 wide, 40 high, as annotated
    (root / "images" / "a.png").unlink()
    Image.fromarray(stored).save(root / "images" / "a.jpg", exif=exif, quality=95)
    document = json.loads((root / "annotations" / "instances_default.json").read_text())
    document["images"][0]["file_name"] = "a.jpg"
    (root / "annotations" / "instances_default.json").write_text(json.dumps(document))
    dataset = import_dataset(root, "coco", tmp_path / "out")
    assert dataset["splits"]["train"]["exif_rotated"] == ["a"]
    shown = np.asarray(Image.open(tmp_path / "out" / "train" / "images" / "a.png"))
    assert shown.shape == (H, W, 3) and mask_of(tmp_path / "out", "train", "a").shape == (H, W)


def test_an_import_replaces_only_an_earlier_import(tmp_path):
    src = coco_source(tmp_path / "coco")
    import_dataset(src, "coco", tmp_path / "out")
    import_dataset(src, "coco", tmp_path / "out")  # its own output: replaced
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="edgeseg did not write"):
        import_dataset(src, "coco", tmp_path / "docs")
    assert (tmp_path / "docs" / "thesis.txt").read_text() == "keep me"


@pytest.mark.slow
def test_the_quickstart_model_trains_an_epoch_on_an_imported_set_without_listing_its_classes(tmp_path):
    from edgeseg.recipe import load_recipe
    from edgeseg.train.loop import fit

    from conftest import REPO

    src = coco_source(tmp_path / "coco")
    for i in range(2, 10):  # more annotated images: 9 in all
        photo(src / "images" / f"a{i}.png", i)
    document = json.loads((src / "annotations" / "instances_default.json").read_text())
    for i in range(2, 10):
        document["images"].append({"id": 10 + i, "file_name": f"a{i}.png", "height": H, "width": W})
        document["annotations"] += [
            {"id": 100 + i, "image_id": 10 + i, "category_id": 3, "segmentation": [ROAD]},
            {"id": 200 + i, "image_id": 10 + i, "category_id": 7, "segmentation": [CAR]},
        ]
    (src / "annotations" / "instances_default.json").write_text(json.dumps(document))
    import_dataset(src, "coco", tmp_path / "data", background="background")
    # the quickstart as a user would point it at their import: EfficientNet-Lite0 from ImageNet
    recipe = load_recipe(
        REPO / "recipes" / "quickstart.yaml",
        [
            "data.dataset=folder",
            f"data.root={tmp_path / 'data'}",
            "data.validation={kind: group_fraction, fraction: 0.3}",
            "data.group_pattern=^(.+)$",
            "train.epochs=1",
            "train.batch_size=4",
        ],
    )
    result = fit(recipe, tmp_path / "train", show_progress=False)
    assert result.best.is_file() and 0 <= result.best_miou <= 100


def test_a_recipe_reads_an_export_directly_imported_once_into_the_cache(tmp_path, monkeypatch):
    from edgeseg.data import dataset_info, load_split
    from edgeseg.recipe import recipe_from_dict

    from conftest import tiny_recipe_dict

    monkeypatch.setenv("EDGESEG_CACHE", str(tmp_path / "cache"))
    src = coco_source(tmp_path / "coco")
    recipe = recipe_from_dict(tiny_recipe_dict(data={"dataset": "import", "format": "coco", "root": str(src)}))
    assert dataset_info(recipe.data).class_names == ("road", "car")
    samples = load_split(recipe.data, "train", arrays=True)
    assert samples.names == ["a"] and np.array_equal(samples.masks[0][24:], expected(0, 1)[24:])
    (imported,) = (tmp_path / "cache" / "imports").glob("coco-*")
    first = (imported / "dataset.yaml").stat().st_mtime_ns
    load_split(recipe.data, "train", arrays=True)
    assert (imported / "dataset.yaml").stat().st_mtime_ns == first  # imported once
    photo(src / "images" / "empty.png", 5)  # a source file changes: imported again
    dataset_info(recipe.data)
    assert len(list((tmp_path / "cache" / "imports").glob("coco-*"))) == 2


def test_an_unknown_import_format_in_a_recipe_names_the_known_ones():
    from edgeseg.errors import RecipeError
    from edgeseg.recipe import recipe_from_dict

    from conftest import tiny_recipe_dict

    with pytest.raises(
        RecipeError, match=r"data.format: 'yolo' is not one of cvat-mask, coco.*did you mean 'yolo-seg'"
    ):
        recipe_from_dict(tiny_recipe_dict(data={"dataset": "import", "format": "yolo", "root": "x"}))
    with pytest.raises(RecipeError, match="names the annotation format of dataset 'import'"):
        recipe_from_dict(tiny_recipe_dict(data={"dataset": "folder", "format": "coco", "root": "x"}))


def test_data_check_prints_each_split_and_writes_a_contact_sheet(tmp_path):
    from typer.testing import CliRunner

    from edgeseg.cli import app

    from conftest import tiny_recipe_dict

    src = coco_source(tmp_path / "coco")
    annotations = src / "annotations"
    (annotations / "instances_val.json").write_text((annotations / "instances_default.json").read_text())
    import_dataset(src, "coco", tmp_path / "data", background="background")
    recipe = tiny_recipe_dict(data={"dataset": "folder", "root": str(tmp_path / "data")})
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(app, ["data", "check", str(tmp_path / "r.yaml"), "--runs", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "train: 1 images, 48x40 (1)" in result.output
    # the exact shares of 1920 pixels: the car 60, the crowd region 8 (ignored)
    assert re.search(r"\n  car +3\.12% of pixels, in 1 images\n", result.output), result.output
    assert "val: 1 images" in result.output and "ignored 0.4% of pixels" in result.output
    sheet = Image.open(tmp_path / "runs" / "tiny" / "contact_sheet.png")
    assert sheet.width >= 160 and sheet.height > 2 * 133  # a row per split, each image grown to 160x133


@pytest.mark.slow
def test_camvid_through_coco_and_cvat_masks_and_back_is_identical(tmp_path):
    """Real masks: three CamVid val frames exported as COCO RLE (pycocotools' encoder) and as a
    CVAT mask export, imported again: every pixel the same, void (ignore) included."""
    from pycocotools import mask as coco_mask

    from edgeseg.data import camvid, load_split
    from edgeseg.recipe import DataSpec

    from conftest import CAMVID

    if not (CAMVID / "val.txt").is_file():
        pytest.skip(f"CamVid not found at {CAMVID}")
    samples = load_split(DataSpec(dataset="camvid", root=str(CAMVID)), "val", arrays=True)
    picks = [0, 50, 100]
    coco = {"images": [], "annotations": [], "categories": []}
    coco["categories"] = [{"id": i + 1, "name": name} for i, name in enumerate(camvid.CLASS_NAMES)]
    cvat = tmp_path / "cvat"
    for folder in (
        "JPEGImages",
        "SegmentationClass",
        "ImageSets/Segmentation",
        "../coco/images",
        "../coco/annotations",
    ):
        (cvat / folder).mkdir(parents=True, exist_ok=True)
    colours = [*camvid.PALETTE[: len(camvid.CLASS_NAMES)], (0, 0, 0)]
    lines = [f"{n}:{r},{g},{b}::" for n, (r, g, b) in zip([*camvid.CLASS_NAMES, "Void"], colours, strict=True)]
    (cvat / "labelmap.txt").write_text("\n".join(lines) + "\n")
    for k in picks:
        name, image, mask = samples.names[k], samples.images[k], samples.masks[k]
        Image.fromarray(image).save(tmp_path / "coco" / "images" / f"{name}.png")
        Image.fromarray(image).save(cvat / "JPEGImages" / f"{name}.png")
        coco["images"].append({"id": k, "file_name": f"{name}.png", "height": mask.shape[0], "width": mask.shape[1]})
        for cls in np.unique(mask[mask != 255]):
            rle = coco_mask.encode(np.asfortranarray((mask == cls).astype(np.uint8)))
            segmentation = {"size": rle["size"], "counts": rle["counts"].decode()}
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]),
                    "image_id": k,
                    "category_id": int(cls) + 1,
                    "segmentation": segmentation,
                }
            )
        rgb = np.asarray(colours, np.uint8)[np.where(mask == 255, len(colours) - 1, mask)]
        Image.fromarray(rgb).save(cvat / "SegmentationClass" / f"{name}.png")
    (cvat / "ImageSets" / "Segmentation" / "default.txt").write_text("\n".join(samples.names[k] for k in picks))
    (tmp_path / "coco" / "annotations" / "instances_default.json").write_text(json.dumps(coco))
    from_coco = import_dataset(tmp_path / "coco", "coco", tmp_path / "out-coco")
    from_cvat = import_dataset(cvat, "cvat-mask", tmp_path / "out-cvat")
    assert from_coco["class_names"] == list(camvid.CLASS_NAMES) == from_cvat["class_names"][:-1]
    for k in picks:
        name, original = samples.names[k], samples.masks[k]
        assert np.array_equal(mask_of(tmp_path / "out-coco", "train", name), original), name
        through_cvat = mask_of(tmp_path / "out-cvat", "train", name)
        assert np.array_equal(np.where(through_cvat == len(camvid.CLASS_NAMES), 255, through_cvat), original), name


# Datumaro, the library CVAT exports through, as the writer: its 1.13 release pins pandas 2.3 and
# Pillow 12 against this project's lock, so it is installed apart (--no-deps; what its VOC and COCO
# exporters import is here) and runs in its own process.
DATUMARO = ["datumaro==1.13.12", "json-stream==2.5.1", "json-stream-rs-tokenizer==0.5.4", "imagesize==2.0.1"]
DATUMARO += ["shapely==2.2.0", "orjson==3.13.0"]

WRITE_WITH_DATUMARO = """
import sys
import datumaro as dm
import numpy as np

out = sys.argv[1]
image = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
road = np.zeros((40, 48), np.uint8)
road[24:40] = 1
car = [10, 28, 20, 28, 20, 34, 10, 34]


def dataset(names, road_label, car_label):
    annotations = [dm.Mask(image=road, label=road_label), dm.Polygon(points=car, label=car_label, z_order=1)]
    item = dm.DatasetItem(id="a", subset="default", media=dm.Image.from_numpy(image), annotations=annotations)
    return dm.Dataset.from_iterable([item], categories=names)


colours = {"background": [(0, 0, 0), [], []], "road": [(128, 64, 128), [], []], "car": [(0, 0, 142), [], []]}
voc = dataset(["background", "road", "car"], 1, 2).transform("polygons_to_masks")  # as CVAT exports
voc.export(out + "/cvat-mask", "voc_segmentation", save_media=True, apply_colormap=True, label_map=colours)
dataset(["road", "car"], 0, 1).export(out + "/coco", "coco_instances", save_media=True)
"""


@pytest.mark.slow
def test_datumaro_s_cvat_mask_and_coco_exports_import_to_the_drawn_pixels(tmp_path):
    import os
    import subprocess
    import sys

    site = tmp_path / "datumaro"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), *DATUMARO]
    subprocess.run(install, check=True, capture_output=True, timeout=600)
    script = tmp_path / "write.py"
    script.write_text(WRITE_WITH_DATUMARO)
    written = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "exports")],
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert written.returncode == 0, written.stderr[-2000:]
    cvat = import_dataset(tmp_path / "exports" / "cvat-mask", "cvat-mask", tmp_path / "from-cvat")
    names = cvat["class_names"]  # Datumaro writes labelmap.txt in its own order
    want = expected(road=names.index("road"), car=names.index("car"), uncovered=names.index("background"))
    assert np.array_equal(mask_of(tmp_path / "from-cvat", "train", "a"), want)
    # Datumaro writes a mask as crowd RLE, as CVAT does: kept as its class with --crowd label
    coco = import_dataset(tmp_path / "exports" / "coco", "coco", tmp_path / "from-coco", crowd="label")
    assert coco["class_names"] == ["road", "car"]
    assert np.array_equal(mask_of(tmp_path / "from-coco", "train", "a"), expected(road=0, car=1))


def test_crowd_regions_are_ignored_and_said_so_unless_kept_as_their_class(tmp_path):
    from typer.testing import CliRunner

    from edgeseg.cli import app

    src = coco_source(tmp_path / "coco")
    result = CliRunner().invoke(app, ["data", "import", str(src), "-f", "coco", "-o", str(tmp_path / "a")])
    assert result.exit_code == 0 and "1 crowd regions ignored" in result.output and "--crowd label" in result.output
    dataset = import_dataset(src, "coco", tmp_path / "b", crowd="label")
    want = expected(road=0, car=1)
    want[0:4, 2:4] = 1  # the crowd region keeps its class, car
    assert np.array_equal(mask_of(tmp_path / "b", "train", "a"), want) and dataset["crowd"] == "label"


def test_a_missing_image_or_unreadable_json_is_one_line_naming_the_file(tmp_path):
    src = coco_source(tmp_path / "coco")
    (src / "images" / "a.png").unlink()
    with pytest.raises(DataError, match=r"instances_default.json: image 'a.png' not found"):
        import_dataset(src, "coco", tmp_path / "out")
    (src / "annotations" / "instances_default.json").write_text('{"images": [')
    with pytest.raises(DataError, match=r"instances_default.json: cannot read COCO annotations"):
        import_dataset(src, "coco", tmp_path / "out")
    labelme = tmp_path / "labelme"
    labelme.mkdir()
    (labelme / "a.json").write_text("not json")
    with pytest.raises(DataError, match=r"a.json: cannot read JSON"):
        import_dataset(labelme, "labelme", tmp_path / "out")
    assert not (tmp_path / "out").exists()
