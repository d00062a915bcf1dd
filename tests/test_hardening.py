"""Bad input, tried the way a campaign against the CLI tried it: each defect it found, fixed and
pinned. Every case asserts the documented exit code and a message naming the file and field."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.errors import CorruptDataError, RecipeError
from edgeseg.recipe import load_recipe, recipe_from_dict

from conftest import tiny_recipe_dict

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch tiny checkpoint and its ONNX fp32 bundle."""
    from edgeseg.exporters import export_checkpoint
    from edgeseg.recipe import ExportTarget
    from edgeseg.train.loop import fit

    root = tmp_path_factory.mktemp("trained")
    recipe = recipe_from_dict(tiny_recipe_dict(train={"epochs": 1}))
    fit(recipe, root / "train", show_progress=False)
    export_checkpoint(root / "train" / "best.pt", recipe, ExportTarget(format="onnx"), root / "bundle")
    return root


# --------------------------------------------------------------------------------------------
# 1. The YAML alias bomb, 6. duplicate keys, 3. sizes, 10. class lists


def alias_bomb(levels: int) -> str:
    text, previous = "name: x\ndata: {dataset: synthetic}\na: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n", "a"
    for name in "bcdefghijk"[:levels]:
        text += f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
        previous = name
    return text


@pytest.mark.timeout(60)
def test_a_yaml_alias_bomb_is_refused_in_one_line_without_expanding_it(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(9))  # 10^10 values if expanded; under 500 bytes
    assert bomb.stat().st_size < 500
    result = invoke("recipe", "check", bomb)
    assert result.exit_code == 2
    assert "expands to 12,345,679,014 values, more than the 10,000 edgeseg accepts" in one_line(result.stderr)
    # Aliases within the bound still work: they are ordinary YAML.
    fine = tmp_path / "fine.yaml"
    fine.write_text("name: x\nexport: {input_size: &size [64, 80]}\ndata: {dataset: synthetic, image_size: *size}\n")
    assert invoke("recipe", "check", fine).exit_code == 0


def test_duplicate_keys_are_refused_with_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("name: x\ndata: {dataset: synthetic}\ntrain: {epochs: 50}\ntrain: {lr: 0.5}\n")
    result = invoke("recipe", "check", path)
    assert result.exit_code == 2
    assert f"{path}: line 4: key 'train' is given twice in one section (first at line 3)" in one_line(result.stderr)
    nested = tmp_path / "nested.yaml"
    nested.write_text("name: x\ndata:\n  dataset: synthetic\n  dataset: camvid\n")
    assert "line 4: key 'dataset' is given twice" in invoke("recipe", "check", nested).stderr


@pytest.mark.parametrize(
    "section, field",
    [
        ({"data": {"image_size": [0, 0]}}, "data.image_size"),
        ({"data": {"image_size": [-8, 64]}}, "data.image_size"),
        ({"data": {"augment": {"crop": [16, 64]}}}, "data.augment.crop"),
        ({"export": {"input_size": [31, 480]}}, "export.input_size"),
        ({"export": {"tensorrt": {"min_hw": [0, 32]}}}, "export.tensorrt.min_hw"),
    ],
)
def test_sizes_below_the_backbones_stride_are_recipe_errors(section, field):
    with pytest.raises(RecipeError, match=rf"<recipe>: {field}: \[H, W\] must be at least 32 pixels each") as info:
        recipe_from_dict(tiny_recipe_dict(**section))
    assert info.value.exit_code == 2


def test_palettes_and_class_lists_that_masks_cannot_hold_are_recipe_errors():
    folder = {"dataset": "folder", "root": "/data", "class_names": ["a", "b"]}
    with pytest.raises(RecipeError, match=r"data.palette\[1\]\[2\]: Input should be less than or equal to 255"):
        recipe_from_dict(tiny_recipe_dict(data={**folder, "palette": [[0, 0, 0], [0, 0, 300]]}))
    too_many = [f"c{i}" for i in range(256)]  # masks are uint8 with 255 as the ignore index
    with pytest.raises(RecipeError, match=r"data.class_names: List should have at most 255 items"):
        recipe_from_dict(tiny_recipe_dict(data={**folder, "class_names": too_many}))


# --------------------------------------------------------------------------------------------
# 7. data.ignore_index with a palette, 8. CamVid list files confined to data.root


def test_ignore_index_holds_for_index_masks_when_a_palette_is_set(tmp_path):
    from edgeseg.data import load_split
    from edgeseg.recipe import DataSpec

    for split in ("train", "val"):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "masks").mkdir(parents=True)
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / split / "images" / "a.png")
        mask = np.zeros((40, 40), np.uint8)
        mask[:10] = 1
        mask[30:] = 200  # the dataset's ignore value
        Image.fromarray(mask).save(tmp_path / split / "masks" / "a.png")
    spec = DataSpec(
        dataset="folder",
        root=str(tmp_path),
        class_names=["bg", "fg"],
        palette=[[0, 0, 0], [255, 0, 0]],
        ignore_index=200,
    )
    masks = load_split(spec, "train").masks
    assert set(np.unique(np.asarray(masks[0])).tolist()) == {0, 1, 255}


def camvid_root(tmp_path: Path, line: str) -> Path:
    root = tmp_path / "camvid"
    for folder in ("train", "trainannot"):
        (root / folder).mkdir(parents=True)
    Image.fromarray(np.zeros((36, 48, 3), np.uint8)).save(root / "train" / "a.png")
    Image.fromarray(np.zeros((36, 48), np.uint8)).save(root / "trainannot" / "a.png")
    (root / "train.txt").write_text("/SegNet/CamVid/train/a.png /SegNet/CamVid/trainannot/a.png\n" + line + "\n")
    return root


@pytest.mark.parametrize("escape", ["../outside.png", "/etc/outside.png"])
def test_camvid_list_entries_outside_the_root_are_refused(tmp_path, escape):
    from edgeseg.data import camvid

    Image.fromarray(np.zeros((36, 48, 3), np.uint8)).save(tmp_path / "outside.png")
    root = camvid_root(tmp_path, f"{escape} /SegNet/CamVid/trainannot/a.png")
    with pytest.raises(CorruptDataError, match=rf"train.txt:2: '{escape}' lies outside data.root") as info:
        camvid.pairs(root, "train")
    assert info.value.exit_code == 10


def test_a_missing_camvid_image_is_named_as_missing(tmp_path):
    from edgeseg.data import load_split
    from edgeseg.recipe import DataSpec

    root = camvid_root(tmp_path, "/SegNet/CamVid/train/gone.png /SegNet/CamVid/trainannot/a.png")
    with pytest.raises(CorruptDataError, match=r"train/gone.png: image file does not exist"):
        load_split(DataSpec(dataset="camvid", root=str(root)), "train")


# --------------------------------------------------------------------------------------------
# 9. Files that hold code: refused by every loader, in one line, naming the field


class _Payload:
    """Unpickling this runs ``touch <marker>``: what a hostile checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def hostile(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": "edgeseg.checkpoint/1", "model": {"w": torch.zeros(1)}, "x": _Payload(marker)}, path)
    return path, marker


def assert_refused(result, path, marker, code, field=None):
    assert result.exit_code == code, result.output
    line = one_line(result.stderr)
    where = f"{path} ({field})" if field else str(path)
    assert f"{where}: holds code or objects that edgeseg refuses to load" in line
    assert "weights_only=False" not in result.output
    assert not marker.exists(), "the file's code ran"


@pytest.mark.slow
def test_every_checkpoint_loader_refuses_a_file_that_holds_code(hostile, tmp_path, trained):
    path, marker = hostile
    image = tmp_path / "street.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(image)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps(tiny_recipe_dict()))
    assert_refused(invoke("eval", path), path, marker, 6)
    assert_refused(invoke("predict", path, image, "--out", tmp_path / "p"), path, marker, 6)
    assert_refused(invoke("export", path, "--format", "onnx"), path, marker, 6)
    compress = tmp_path / "compress.yaml"
    compress.write_text(json.dumps(tiny_recipe_dict(compress={"steps": [{"kind": "ptq"}]})))
    assert_refused(invoke("compress", compress, "--checkpoint", path, "--out", tmp_path / "c"), path, marker, 6)
    assert_refused(invoke("bench", path, "--iterations", "2"), path, marker, 6)
    # resuming training from a planted last.pt
    out = tmp_path / "train"
    out.mkdir()
    shutil.copy(path, out / "last.pt")
    assert_refused(invoke("train", recipe, "--out", out, "--resume"), out / "last.pt", marker, 6)


def test_weights_files_that_hold_code_are_refused_naming_the_recipe_field(hostile, tmp_path, hub_cache):
    from torchvision.models import MobileNet_V3_Large_Weights

    path, marker = hostile
    recipe = tmp_path / "r.yaml"
    model = {"head": "lraspp", "backbone": "mobilenet_v3_small", "backbone_weights": str(path)}
    recipe.write_text(json.dumps(tiny_recipe_dict(model=model)))
    assert_refused(invoke("train", recipe, "--out", tmp_path / "t"), path, marker, 5, "model.backbone_weights")
    # torchvision's own builders would read a planted hub-cache file with weights_only=False
    planted = hub_cache / Path(MobileNet_V3_Large_Weights.IMAGENET1K_V1.url).name
    shutil.copy(path, planted)
    recipe.write_text(
        json.dumps(tiny_recipe_dict(model={"backbone": "mobilenet_v3_large", "backbone_weights": "imagenet"}))
    )
    result = invoke("train", recipe, "--out", tmp_path / "t2")
    assert_refused(result, planted, marker, 5, "model.backbone_weights MobileNet_V3_Large_Weights.IMAGENET1K_V1")
    # and a planted segmentation checkpoint (model.weights)
    from torchvision.models.segmentation import LRASPP_MobileNet_V3_Large_Weights

    weights = LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1
    planted = hub_cache / Path(weights.url).name
    shutil.copy(path, planted)
    segmentation = {"head": "lraspp", "backbone": "mobilenet_v3_large", "weights": "LRASPP_MobileNet_V3_Large_Weights"}
    recipe.write_text(json.dumps(tiny_recipe_dict(model=segmentation)))
    result = invoke("train", recipe, "--out", tmp_path / "t3")
    assert_refused(result, planted, marker, 5, f"model.weights {weights}")


# --------------------------------------------------------------------------------------------
# 2. model.json that lies about the graph, 5. bench failures keep their exit codes


def test_bench_refuses_a_model_json_that_disagrees_with_its_graph(trained, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(trained / "bundle", bundle)
    meta = json.loads((bundle / "model.json").read_text())
    meta["classes"]["names"] = meta["classes"]["names"][:3]  # 3 classes over an 8-class graph
    (bundle / "model.json").write_text(json.dumps(meta))
    result = invoke("bench", bundle, "--iterations", "2", "--rounds", "1", "--warmup", "1")
    assert result.exit_code == 8
    assert f"{bundle / 'model.json'}: classes.names is [" in one_line(result.stderr)


def test_bench_refuses_a_recipe_whose_classes_are_not_the_artifacts(trained, tmp_path):
    recipe = tmp_path / "other.yaml"
    data = {"dataset": "folder", "root": str(tmp_path), "class_names": ["a", "b", "c"]}
    recipe.write_text(json.dumps(tiny_recipe_dict(data=data)))
    result = invoke("bench", trained / "bundle", "--recipe", recipe, "--iterations", "2", "--rounds", "1")
    assert result.exit_code == 2
    assert "the artifact has 8 classes but the recipe's dataset has 3" in one_line(result.stderr)


def test_bench_keeps_the_workers_exit_code_and_message(trained, tmp_path):
    engine = tmp_path / "engine"
    engine.mkdir()
    meta = json.loads((trained / "bundle" / "model.json").read_text())
    meta["artifact"].update(file="model.engine", format="tensorrt", precision="fp16")
    (engine / "model.json").write_text(json.dumps(meta))
    (engine / "model.engine").write_bytes(b"\0" * 64)
    result = invoke("bench", engine, "--iterations", "2")
    assert result.exit_code == 7, result.output  # no TensorRT (or no GPU) here: a missing runtime
    assert "benchmark failed" not in result.stderr and one_line(result.stderr).startswith("error: ")
    missing = invoke("bench", tmp_path / "nope")
    assert missing.exit_code == 2 and "does not exist" in " ".join(missing.output.replace("│", " ").split())


def test_broken_bundles_name_the_file(trained, tmp_path):
    from edgeseg.bench.accuracy import describe
    from edgeseg.errors import EdgesegError

    bundle = tmp_path / "bundle"
    shutil.copytree(trained / "bundle", bundle)
    (bundle / "model.json").write_text('{"format": "edgeseg.bundle/2", "artifact": {"file": "model.onnx"}}')
    with pytest.raises(EdgesegError, match=rf"{bundle / 'model.json'}: invalid model.json: no artifact.format"):
        describe(bundle)
    (bundle / "model.json").write_text("{not json")
    with pytest.raises(EdgesegError, match=rf"{bundle / 'model.json'}: unreadable model.json"):
        describe(bundle)


def test_an_openvino_ir_without_its_weights_names_the_missing_file(tmp_path):
    from edgeseg.errors import EdgesegError
    from edgeseg.runtimes.openvino_rt import OpenVINOSession

    (tmp_path / "model.xml").write_text("<net/>")
    with pytest.raises(EdgesegError, match=rf"{tmp_path / 'model.bin'}: missing \(the weights of model.xml"):
        OpenVINOSession(tmp_path / "model.xml")


# --------------------------------------------------------------------------------------------
# 4. One run per output directory


HOLD = """
import sys, time
from pathlib import Path
from edgeseg.build.lock import locked
with locked(Path(sys.argv[1]), "edgeseg train holder"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_run_into_the_same_directory_fails_fast_naming_the_holder(tmp_path):
    import socket

    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        recipe = tmp_path / "r.yaml"
        recipe.write_text(json.dumps(tiny_recipe_dict(train={"epochs": 1})))
        result = invoke("train", recipe, "--out", out)
        assert result.exit_code == 11
        line = one_line(result.stderr)
        assert f"{out}: in use by another edgeseg run (PID {holder.pid} on {socket.gethostname()}" in line
        assert not (out / "best.pt").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The holder died without cleaning up: its lock died with it.
    deadline = time.monotonic() + 10
    from edgeseg.build.lock import locked

    while True:
        try:
            with locked(out, "test"):
                break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_two_builds_of_one_recipe_do_not_share_the_run_directory(tmp_path):
    from edgeseg.build.pipeline import build
    from edgeseg.errors import BusyError

    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "tiny")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError, match=rf"{tmp_path / 'tiny'}: in use by another edgeseg run \(PID {holder.pid}"):
            build(recipe_from_dict(tiny_recipe_dict(train={"epochs": 1})), tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_a_train_that_fails_at_once_leaves_no_empty_directory(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps(tiny_recipe_dict(train={"batch_size": 64})))  # more than the 16 images
    result = invoke("train", recipe, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "train.batch_size: 64" in result.stderr
    assert not (tmp_path / "out").exists()


def test_bench_help_says_what_it_accepts():
    result = runner.invoke(app, ["bench", "--help"], terminal_width=200)
    text = " ".join(result.output.replace("│", " ").split())
    assert (
        "Bundle directories (from edgeseg export/build, or a model file inside one), or an edgeseg checkpoint" in text
    )


def test_the_shipped_recipes_still_load(monkeypatch):
    monkeypatch.setenv("EDGESEG_MOBILENET_V2", "mobilenet_v2.pth")
    for path in sorted(Path(__file__).resolve().parents[1].joinpath("recipes").glob("*.yaml")):
        assert load_recipe(path).name == path.stem


# --------------------------------------------------------------------------------------------
# clean touches nothing outside the directory it was given


def _finished_run(run: Path, stale: str = "export-old") -> None:
    """A run a build finished, with one stage directory and an archived recipe no build needs."""
    (run / "train").mkdir(parents=True)
    (run / "train" / "stage.json").write_text("{}")
    (run / stale).mkdir()
    (run / stale / "stage.json").write_text("{}")
    (run / "recipe.1.yaml").write_text("name: x\n")
    (run / "manifest.json").write_text(json.dumps({"stages": [{"name": "train"}]}))


def test_clean_never_deletes_through_a_link_and_dry_run_lists_exactly_what_goes(tmp_path):
    outside = tmp_path / "precious"
    _finished_run(outside)
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "linked").symlink_to(outside)  # a run directory that is a link to elsewhere
    _finished_run(runs / "real")
    elsewhere = tmp_path / "elsewhere-stage"
    elsewhere.mkdir()
    (elsewhere / "stage.json").write_text("{}")
    (elsewhere / "keep.bin").write_bytes(b"x" * 1000)
    (runs / "real" / "export-linked").symlink_to(elsewhere)  # a stage directory that is a link
    (runs / "broken").mkdir()
    (runs / "broken" / "manifest.json").write_text("[1, 2]")  # valid JSON, wrong shape

    runner = CliRunner()
    dry = runner.invoke(app, ["clean", str(runs), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    listed = sorted(line.split(" (")[0].removeprefix("would remove ") for line in dry.stdout.splitlines()[:-1])
    expected = sorted(str(runs / "real" / name) for name in ("export-linked", "export-old", "recipe.1.yaml"))
    assert listed == expected
    assert "linked: a link to" in dry.stderr and "broken/manifest.json: not an edgeseg manifest" in dry.stderr

    done = runner.invoke(app, ["clean", str(runs)])
    assert done.exit_code == 0, done.output
    assert sorted(line.split(" (")[0].removeprefix("removed ") for line in done.stdout.splitlines()[:-1]) == expected
    assert not any((runs / "real" / name).exists() or (runs / "real" / name).is_symlink() for name in expected)
    assert (runs / "real" / "train" / "stage.json").is_file()
    # Everything outside runs/ is as it was: the linked run's stale stage and the linked stage's files.
    assert (outside / "export-old" / "stage.json").is_file() and (outside / "recipe.1.yaml").is_file()
    assert (elsewhere / "keep.bin").stat().st_size == 1000


# --------------------------------------------------------------------------------------------
# Round two, 5. a full disk is exit 9 and one line on every write path


def _full_disk_available() -> bool:
    """A tmpfs of our own in a user and mount namespace: a real ENOSPC without root on the host."""
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /tmp && echo ok"],
        capture_output=True,
        text=True,
    )
    return probe.returncode == 0 and probe.stdout.strip() == "ok"


@pytest.mark.slow
@pytest.mark.skipif(
    not shutil.which("unshare") or not _full_disk_available(), reason="no user namespaces here (unshare -rm)"
)
def test_a_full_disk_is_exit_9_in_one_line_on_every_write_path(tmp_path, checkpoint):
    """Each command writes into a tmpfs that is already full (a real ENOSPC, not a mock)."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(json.dumps(tiny_recipe_dict(train={"epochs": 1})))
    image = tmp_path / "street.png"
    Image.fromarray(np.zeros((64, 80, 3), dtype=np.uint8)).save(image)
    full = tmp_path / "full"
    full.mkdir()
    edgeseg = f"{sys.executable} -m edgeseg"
    fill = f"(dd if=/dev/zero of={full}/filler bs=4k 2>/dev/null; true) && "
    commands = {  # 256 KB: small files fit, a 4 MB checkpoint or model does not; or filled up first
        "train": f"{edgeseg} train {recipe} --out {full}/train",
        "export": f"{edgeseg} export {checkpoint} --out {full}/bundle",
        "build": f"{edgeseg} build {recipe} --runs {full}/runs -q",
        "train, disk already full": f"{fill}{edgeseg} train {recipe} --out {full}/train",
        "export, disk already full": f"{fill}{edgeseg} export {checkpoint} --out {full}/bundle",
        "predict": f"{fill}{edgeseg} predict {checkpoint} {image} --out {full}/pred",
        "eval --json": f"{fill}{edgeseg} eval {checkpoint} --json {full}/m.json",
    }
    for what, command in commands.items():
        script = f"mount -t tmpfs -o size=256k tmpfs {full} && {command}"
        result = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300)
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 9, (what, result.stderr[-2000:])
        assert len(lines) == 1 and "no space left on device" in lines[0].lower(), (what, result.stderr[-2000:])
        assert f"error: {full}/" in lines[0], (what, lines)  # names the file that could not be written
        assert "Traceback" not in result.stderr, what


# --------------------------------------------------------------------------------------------
# Round two, 1 (the class): an output folder is replaced only when edgeseg wrote it


def test_an_output_folder_is_replaced_only_when_edgeseg_wrote_it(trained, tmp_path):
    checkpoint = trained / "train" / "best.pt"
    documents = tmp_path / "Documents"
    documents.mkdir()
    (documents / "thesis.txt").write_text("four years")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "photo.jpg").write_bytes(b"\xff\xd8")
    link = tmp_path / "link"
    link.symlink_to(elsewhere)
    before = {p: p.read_bytes() for p in (documents / "thesis.txt", a_file, elsewhere / "photo.jpg")}
    for out, says in ((documents, "edgeseg did not write"), (a_file, "a file is in the way"), (link, "a link")):
        result = invoke("export", checkpoint, "--out", out)
        assert result.exit_code == 2, result.output
        assert says in one_line(result.stderr) and str(out) in result.stderr
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Documents", "elsewhere", "link", "notes.txt"]
    # Its own outputs it does replace: an earlier bundle (model.json), or an empty folder.
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "empty"):
        assert invoke("export", checkpoint, "--out", out).exit_code == 0
    assert (tmp_path / "empty" / "model.json").is_file()


# --------------------------------------------------------------------------------------------
# Round two, 4. the cache re-reads what it trusts; standalone commands keep out of stage dirs


@pytest.mark.slow
def test_a_stage_whose_files_changed_is_no_cache_hit_and_standalone_commands_keep_out(tmp_path):
    from edgeseg.build.pipeline import build

    recipe = recipe_from_dict(tiny_recipe_dict(train={"epochs": 1}, bench={"accuracy": False, "reference": False}))
    first = build(recipe, tmp_path)
    train_dir = tmp_path / "tiny" / "train"
    published = (train_dir / "best.pt").read_bytes()
    recipe_file = tmp_path / "tiny.yaml"
    recipe_file.write_text(json.dumps(tiny_recipe_dict(train={"epochs": 1}, compress={"steps": [{"kind": "ptq"}]})))
    for command in (
        ["train", recipe_file, "--out", train_dir],
        ["compress", recipe_file, "--checkpoint", train_dir / "best.pt", "--out", train_dir],
    ):
        result = invoke(*command)
        assert result.exit_code == 2 and "a stage directory of an edgeseg build" in one_line(result.stderr)
    result = invoke("export", train_dir / "best.pt", "--out", tmp_path / "tiny" / "export-onnx-fp32")
    assert result.exit_code == 2 and "a stage directory of an edgeseg build" in one_line(result.stderr)
    assert (train_dir / "best.pt").read_bytes() == published

    os.utime(train_dir / "best.pt", ns=(1, 1))  # touched, same bytes: still a hit (the digest says so)
    assert all(s.cached for s in build(recipe, tmp_path))
    (train_dir / "best.pt").write_bytes(published[:-10] + b"0123456789")  # overwritten by hand
    again = build(recipe, tmp_path)
    assert [(s.name, s.cached) for s in again][:3] == [("data", True), ("train", False), ("eval", False)]
    assert (train_dir / "best.pt").read_bytes() != published[:-10] + b"0123456789"
    assert again[2].info == first[2].info  # the same seed retrains the same model
    (tmp_path / "tiny" / "export-onnx-fp32" / "model.onnx").unlink()
    assert [(s.name, s.cached) for s in build(recipe, tmp_path)][3] == ("export-onnx-fp32", False)


# --------------------------------------------------------------------------------------------
# Round two, 8. the smaller ones


def test_a_plain_pickle_is_refused_in_exactly_one_line(tmp_path):
    import pickle

    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps({"weights": [1, 2, 3]}, protocol=4))
    result = subprocess.run(
        [sys.executable, "-m", "edgeseg", "eval", str(plain)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 6 and one_line(result.stderr).startswith(f"error: {plain}:")


def test_runs_compare_resolves_names_in_dir_first_and_skips_a_broken_manifest(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    for name in ("a", "b"):
        (runs / name).mkdir(parents=True)
        (runs / name / "manifest.json").write_text('{"stages": 5}')
    (runs / "c").mkdir()
    (runs / "c" / "manifest.json").write_text("[1, 2]")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()  # a folder called "a" in the current directory must not win over DIR's run
    (tmp_path / "a" / "manifest.json").write_text("{}")
    result = invoke("runs", runs, "--compare", "a", "b")
    assert str(runs / "a" / "manifest.json") in result.stderr
    listed = invoke("runs", runs)
    assert listed.exit_code == 0 and listed.stderr.count("skipped") == 3 and "Traceback" not in listed.output


def test_a_camvid_tree_with_a_linked_split_folder_loads_and_a_list_cannot_leave_the_root(tmp_path):
    from edgeseg.data.camvid import pairs

    root, disk = tmp_path / "CamVid", tmp_path / "other-disk" / "train"
    disk.mkdir(parents=True)
    root.mkdir()
    (root / "train").symlink_to(disk)  # the owner's layout: followed
    (root / "trainannot").mkdir()
    for folder in (disk, root / "trainannot"):
        Image.fromarray(np.zeros((32, 32), dtype=np.uint8)).save(folder / "a.png")
    (root / "train.txt").write_text("train/a.png trainannot/a.png\n")
    assert [ref.image.name for ref in pairs(root, "train")] == ["a.png"]
    for line, says in (
        ("train/a\x00.png trainannot/a.png", "control character"),
        ("../x.png trainannot/a.png", "outside"),
    ):
        (root / "train.txt").write_text(line + "\n")
        with pytest.raises(CorruptDataError, match=says):
            pairs(root, "train")


def test_a_missing_runtime_names_the_bundle(trained, monkeypatch):
    import sys as system

    from edgeseg.errors import DependencyError
    from edgeseg.runtimes.session import open_session

    monkeypatch.setitem(system.modules, "onnxruntime", None)
    with pytest.raises(DependencyError, match=str(trained / "bundle")):
        open_session(trained / "bundle")


def test_a_second_build_is_refused_before_torch_is_imported(tmp_path):
    from edgeseg.build.lock import locked

    recipe_file = tmp_path / "tiny.yaml"
    recipe_file.write_text(json.dumps(tiny_recipe_dict()))
    probe = (
        "import sys; from edgeseg.cli import app\n"
        f"try: app(['build', {str(recipe_file)!r}, '--runs', {str(tmp_path / 'runs')!r}])\n"
        "except SystemExit as e: print('exit', e.code, 'torch' in sys.modules)\n"
    )
    with locked(tmp_path / "runs" / "tiny", "a test holding the run"):
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "exit 11 False", result.stdout + result.stderr


# --------------------------------------------------------------------------------------------
# Round two, 3. a bundle that lies is caught by bench and by the kit, exit 8 naming the field


def _lying(trained, tmp_path, name, edit):
    bundle = tmp_path / name
    shutil.copytree(trained / "bundle", bundle)
    meta = json.loads((bundle / "model.json").read_text())
    edit(bundle, meta)
    (bundle / "model.json").write_text(json.dumps(meta))
    return bundle


def _retag(bundle, meta):
    """A valid ONNX file that is not the one exported (its metadata rewritten)."""
    import onnx

    model = onnx.load(str(bundle / "model.onnx"))
    model.producer_name = "someone else"
    onnx.save(model, str(bundle / "model.onnx"))


def _liar_of_both(bundle, meta):
    """Edits model.json's mean/std and the proof's copy of them alike: only the reference
    image's classes can tell."""
    import numpy as np

    meta["input"]["preprocessing"].update(mean=[0.9, 0.1, 0.9], std=[0.05, 0.05, 0.05])
    with np.load(bundle / "proof.npz") as stored:
        arrays = {k: stored[k] for k in stored.files}
    facts = json.loads(str(arrays["facts"]))
    facts.update({"input.preprocessing.mean": [0.9, 0.1, 0.9], "input.preprocessing.std": [0.05, 0.05, 0.05]})
    arrays["facts"] = np.array(json.dumps(facts))
    np.savez_compressed(bundle / "proof.npz", **arrays)


LIES = {
    "mean": (lambda b, m: m["input"]["preprocessing"].update(mean=[0.2, 0.2, 0.2]), "input.preprocessing.mean"),
    "class order": (lambda b, m: m["classes"]["names"].reverse(), "classes.names"),
    "size": (lambda b, m: m["input"].update(size=[32, 40]), "input.size"),
    "layout": (lambda b, m: m["input"].update(layout="NHWC"), "input.layout"),
    "outside": (lambda b, m: m["artifact"].update(file="../bundle/model.onnx"), "points outside the bundle"),
    "swapped": (_retag, "artifact.file model.onnx: not the file exported"),
}


@pytest.mark.slow
def test_a_bundle_that_lies_is_refused_by_bench_and_the_kit_naming_the_field(trained, tmp_path):
    from conftest import KIT, REPO

    image = tmp_path / "street.png"
    Image.fromarray(np.full((64, 80, 3), 120, dtype=np.uint8)).save(image)
    honest = invoke("bench", trained / "bundle", "--iterations", "2", "--rounds", "1", "--warmup", "1", "--json",
                    tmp_path / "honest.json")  # fmt: skip
    assert honest.exit_code == 0, honest.output
    proof = json.loads((tmp_path / "honest.json").read_text())["results"][0]["proof"]
    assert proof["reference_agreement"] == 1.0 and len(proof["artifact_sha256"]) == 64
    for name, (edit, says) in LIES.items():
        bundle = _lying(trained, tmp_path, name, edit)
        result = invoke("bench", bundle, "--iterations", "2", "--rounds", "1", "--warmup", "1")
        assert result.exit_code == 8 and says in one_line(result.stderr), (name, result.output)
        kit = subprocess.run(
            [sys.executable, str(REPO / "tests" / "no_torch.py"), str(KIT), str(bundle), str(image), "--out",
             str(tmp_path / f"kit-{name}")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert kit.returncode == 8 and says in one_line(kit.stderr), (name, kit.stderr[-1500:])


def test_a_liar_who_edits_the_proof_too_is_caught_by_the_reference_output(tmp_path):
    """model.json and proof.npz's copy both say another mean/std: only the reference image's
    output can tell. A model that responds to its input (here a per-pixel linear one; the tiny
    trained models of these tests barely do, and for them such a lie barely matters) shows it."""
    from edgeseg.bundle import prepare, verify_proof, write_proof
    from edgeseg.errors import ExportError

    weights = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)

    def run(batch):  # NCHW float -> N x 8 x H x W logits
        return np.einsum("kc,nchw->nkhw", weights, batch)

    meta = {
        "artifact": {"file": "model.onnx"},
        "input": {"size": [16, 20], "layout": "NCHW", "dtype": "float32",
                  "preprocessing": {"in_graph": False, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}},
        "output": {"kind": "logits"},
        "classes": {"names": [str(i) for i in range(8)]},
    }  # fmt: skip
    (tmp_path / "model.onnx").write_bytes(b"weights")
    image = np.random.default_rng(1).integers(0, 255, (16, 20, 3), dtype=np.uint8)
    meta["proof"] = write_proof(tmp_path, meta, image, run(prepare([image], meta)))
    assert verify_proof(tmp_path, meta, run) == 1.0
    _liar_of_both(tmp_path, meta)
    with pytest.raises(ExportError, match="the reference image gives another output than at export"):
        verify_proof(tmp_path, meta, run)


# --------------------------------------------------------------------------------------------
# Round two, 7. one line, not a traceback, where a path cannot be used


def test_paths_that_cannot_be_used_are_one_line_exit_2(trained, tmp_path):
    checkpoint, bundle = trained / "train" / "best.pt", trained / "bundle"
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(json.dumps(tiny_recipe_dict(train={"epochs": 1})))
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    image = tmp_path / "street.png"
    Image.fromarray(np.zeros((64, 80, 3), dtype=np.uint8)).save(image)
    unhashable = tmp_path / "unhashable.yaml"
    unhashable.write_text("name: x\ndata: {dataset: synthetic}\n? [a, b]\n: 1\n")
    cases = [
        (["build", recipe, "--runs", a_file], str(a_file)),
        (["train", recipe, "--out", a_file], str(a_file)),
        (["predict", checkpoint, image, "--out", a_file], str(a_file)),
        (["eval", checkpoint, "--json", tmp_path], "a directory"),
        (["bench", bundle, "--json", a_file / "out.json"], "is a file, not a folder"),
        (["recipe", "check", unhashable], "a mapping key must be a plain value"),
    ]
    for args, says in cases:
        result = invoke(*args)
        assert result.exit_code == 2 and says in one_line(result.stderr), (args, result.output)
    assert a_file.read_text() == "mine"
