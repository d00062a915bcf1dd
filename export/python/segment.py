#!/usr/bin/env python3
"""Run an edgeseg bundle on images, videos or a camera: numpy + Pillow + one runtime. No edgeseg.

    python segment.py runs/quickstart/export-onnx-int8 street.jpg --out overlays/
    python segment.py runs/quickstart/export-openvino-int8 street.jpg --runtime openvino
    python segment.py runs/quickstart/export-litert-int8 street.jpg        # ai-edge-litert, no torch
    python segment.py runs/quickstart/export-executorch-fp32 street.jpg    # executorch (needs torch)
    python segment.py runs/quickstart/deploy drive.mp4 --out videos/        # video (pip install av)

Runtimes by artifact: .onnx/.ort onnxruntime (or openvino), .xml openvino, .tflite ai-edge-litert
(torch-free), .pte executorch's Python runtime, whose tensors are torch's: `pip install
executorch==<the version in model.json "versions">` (a .pte runs on the runtime version that wrote
it or newer within ExecuTorch's compatibility window; pin it).

Everything the model needs is read from the bundle's model.json: input size and layout, whether
normalisation is in the graph, mean/std, output kind, class names and colours. A bundle that
``select:`` chose (``runs/<name>/deploy``) also says how it was measured and is run that way by
default: model.json ``deployment.runtime`` and ``deployment.compute`` (OpenVINO computing in bf16
on a CPU with AVX512_BF16 or AMX, say). Copy this file into your application; it depends on
nothing from edgeseg.

Every frame's path is timed stage by stage (decode, resize, normalise, infer, argmax, upsample,
colour, and encode for video); the command line ends with the p50 of each, like
`decode 0.6 | resize 0.0 | normalise 0.2 | infer 7.4 | ... ms p50, 9.5 ms total, 105 FPS`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

RUNTIMES = ("onnxruntime", "openvino", "litert", "executorch")
DEFAULT_RUNTIME = {".xml": "openvino", ".tflite": "litert", ".pte": "executorch"}
COMPUTE = ("f32", "bf16", "f16")  # OpenVINO's inference precisions; the others compute what the file holds
# a frame's stages, in order (Frame.ms has the middle six; decode and encode are the caller's)
STAGES = ("decode", "resize", "normalise", "infer", "argmax", "upsample", "colour", "encode")


class BundleMismatch(ValueError):
    """model.json does not describe the artifact beside it (exit code 8 from the command line)."""


class Segmenter:
    """Loads a bundle directory, checks its proof, and turns RGB images into class maps."""

    def __init__(
        self,
        bundle: str | Path,
        runtime: str | None = None,
        threads: int | None = None,
        compute: str | None = None,
        video: bool = False,  # frames from a decoder, overlays to encoders: leave them the cores
    ):
        self.bundle = Path(bundle)
        self.meta = json.loads((self.bundle / "model.json").read_text())
        artifact = _artifact(self.bundle, self.meta)
        deployment = self.meta.get("deployment") or {}
        self.runtime = runtime or deployment.get("runtime") or DEFAULT_RUNTIME.get(artifact.suffix, "onnxruntime")
        # the deployed precision goes with the deployed runtime only: another runtime computes f32
        asked = compute or (deployment.get("compute") if self.runtime == deployment.get("runtime") else None)
        self._run, self.compute = _open(artifact, self.runtime, threads, asked or "f32", video)
        if asked and self.compute != asked:  # OpenVINO computes f32 where the CPU lacks bf16: say so
            print(f"warning: {self.runtime} computes in {self.compute} here, not {asked}", file=sys.stderr)
        self.channels_last = self.meta["input"].get("layout") == "NHWC"
        self.height, self.width = self.meta["input"]["size"]
        self.palette_bytes = palette_bytes(self.meta["classes"]["palette"])
        self._prepare_input()
        self._check_proof(artifact)

    def _check_proof(self, artifact: Path) -> None:
        """The bundle proves its model.json (edgeseg writes proof.npz at export): the artifact's
        sha256, the fields this file acts on, and the reference image's classes."""
        sidecar, proof = self.bundle / "model.json", self.meta.get("proof") or {}
        if not (self.bundle / "proof.npz").is_file() or _sha256(artifact) != proof.get("artifact_sha256"):
            raise BundleMismatch(f"{sidecar}: artifact.file {artifact.name}: not the file exported (or no proof.npz)")
        with np.load(self.bundle / "proof.npz", allow_pickle=False) as stored:
            facts, image = json.loads(str(stored["facts"])), stored["image"]
            expected = {k: stored[k] for k in ("classes", "logits") if k in stored.files}
        for name, value in facts.items():
            node = self.meta
            for key in name.split("."):
                node = node.get(key) if isinstance(node, dict) else None
            if node != value:
                raise BundleMismatch(f"{sidecar}: {name} is {node!r}; the export wrote {value!r}")
        if "classes" in expected:
            self._check_reference(sidecar, proof, image, expected)

    def _check_reference(self, sidecar: Path, proof: dict, image: np.ndarray, expected: dict) -> None:
        """The reference image must give the export's output: class ids, and logits within
        max_logit_error standard deviations (a near-constant model keeps its ids under a lie)."""
        output = self._run(self._tensor(self._resize(image)))[0]
        produced = output if self.meta["output"]["kind"] == "class_map" else output.argmax(0)
        agreement = (
            float((produced == expected["classes"]).mean()) if produced.shape == expected["classes"].shape else 0
        )
        error = 0.0
        if "logits" in expected:
            reference = expected["logits"]
            same = output.shape == reference.shape
            error = float(np.abs(output - reference).mean() / (reference.std() + 1e-6)) if same else float("inf")
        if agreement < proof.get("min_agreement", 0.9) or error > proof.get("max_logit_error", 0.15):
            said = f"{agreement:.1%} of pixels agree, logit error {error:.2f} sd"
            raise BundleMismatch(f"{sidecar}: the reference image gives another output than at export ({said})")

    def segment(self, rgb: np.ndarray, alpha: float | None = 0.5) -> Frame:
        """One HxWx3 uint8 RGB frame -> its class ids at its own size and, unless alpha is None,
        the colour overlay; each stage timed (decoding is the caller's: see read_rgb)."""
        clock = Clock()
        small = clock("resize", self._resize(rgb))
        batch = clock("normalise", self._tensor(small))
        output = clock("infer", self._run(batch)[0])
        logits = self.meta["output"]["kind"] == "logits"
        ids = clock("argmax", argmax_ids(output) if logits else output.astype(np.uint8))
        classes = clock("upsample", _resize_ids(ids, rgb.shape[:2]))
        overlay = clock("colour", None if alpha is None else self.colour(rgb, classes, alpha))
        return Frame(classes, overlay, clock.ms)

    def _resize(self, rgb: np.ndarray) -> np.ndarray:
        """Bilinear to the model's input size (the export's preprocessing); a no-op at that size."""
        if rgb.shape[:2] == (self.height, self.width):
            return rgb
        return np.asarray(Image.fromarray(rgb).resize((self.width, self.height), Image.BILINEAR))

    def _tensor(self, rgb: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 -> the 1x3xHxW (or 1xHxWx3) input, in one pass into a reused buffer:
        normalisation as one multiply-add (0.19 ms at 360x480, where x / 255 - mean, / std and
        the transpose took 1.4 ms), an int8 input through a 256-entry table per channel."""
        planes = rgb if self.channels_last else rgb.transpose(2, 0, 1)
        out = self._buffer[0]
        if self._table is not None:  # int8 input: q = clip(round(normalised / scale) + zero_point)
            for c in range(3):
                np.take(self._table[c], rgb[..., c], out=out[..., c] if self.channels_last else out[c])
        elif self._scale is None:  # normalisation in the graph: the uint8 pixels go in as they are
            np.copyto(out, planes)
        else:
            np.multiply(planes, self._scale, out=out)
            out += self._offset
        return self._buffer

    def _prepare_input(self) -> None:
        """The buffer and constants _tensor fills from (model.json's preprocessing, quantization)."""
        pre, quantized = self.meta["input"]["preprocessing"], self.meta["input"].get("quantization")
        shape = (3, 1, 1) if not self.channels_last else (1, 1, 3)
        size = (self.height, self.width)
        if pre["in_graph"]:
            self._scale = self._offset = None
        else:  # (pixel / 255 - mean) / std == pixel * scale + offset
            std, mean = np.asarray(pre["std"], np.float32), np.asarray(pre["mean"], np.float32)
            self._scale, self._offset = (1 / (255 * std)).reshape(shape), (-mean / std).reshape(shape)
        self._table, dtype = None, np.uint8 if pre["in_graph"] else np.float32
        if quantized:
            levels = np.arange(256, dtype=np.float32)[None, :]
            if self._scale is not None:
                levels = levels * self._scale.reshape(3, 1) + self._offset.reshape(3, 1)
            q = np.round(levels / quantized["scale"]) + quantized["zero_point"]
            self._table, dtype = np.clip(q, -128, 127).astype(np.int8), np.int8
        self._buffer = np.empty((1, *size, 3) if self.channels_last else (1, 3, *size), dtype)

    def colour(self, rgb: np.ndarray, classes: np.ndarray, alpha: float = 0.5) -> Image.Image:
        return paint(rgb, classes, self.palette_bytes, alpha)


def palette_bytes(colours) -> bytes:
    """256 RGB entries, class id i at 3i (ids past the classes black): what paint() and a
    palette PNG take."""
    table = np.zeros((256, 3), np.uint8)
    table[: len(colours)] = colours
    return table.tobytes()


def paint(rgb: np.ndarray, classes: np.ndarray, palette: bytes, alpha: float = 0.5) -> Image.Image:
    """The class colours (``palette``: 3 bytes per class id) blended over the frame. Pillow's
    palette and blend: 0.25 ms at 360x480, where the same in numpy floats took 1.6 ms."""
    painted = Image.frombuffer("P", classes.shape[::-1], np.ascontiguousarray(classes), "raw", "P", 0, 1)
    painted.putpalette(palette)
    return Image.blend(Image.fromarray(rgb), painted.convert("RGB"), alpha)


class Frame(NamedTuple):
    classes: np.ndarray  # HxW uint8 class ids at the frame's size
    overlay: Image.Image | None  # the class colours over the frame
    ms: dict[str, float]  # milliseconds per stage: resize, normalise, infer, argmax, upsample, colour


class Clock:
    """Stage timings: each call records the time since the previous one under its stage's name."""

    def __init__(self):
        self.ms: dict[str, float] = {}
        self._last = time.perf_counter()

    def __call__(self, stage: str, value=None):
        now = time.perf_counter()
        self.ms[stage] = (now - self._last) * 1e3
        self._last = now
        return value


def read_rgb(path) -> np.ndarray:
    """An image file (a path, or a binary stream) as HxWx3 uint8 RGB (the "decode" stage)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def argmax_ids(logits: np.ndarray) -> np.ndarray:
    """CxHxW logits -> HxW uint8 ids, the first maximum as np.argmax picks it. One pass per class
    over contiguous planes: 0.54 ms for 11x360x480, where np.argmax(axis=0) took 1.75 ms."""
    best, ids = logits[0].copy(), np.zeros(logits.shape[1:], np.uint8)
    for c in range(1, logits.shape[0]):
        higher = logits[c] > best
        ids[higher] = c
        np.maximum(best, logits[c], out=best)
    return ids


def _resize_ids(ids: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Class ids to the frame's HxW, nearest neighbour (ids are labels, not intensities)."""
    if ids.shape == size:
        return ids
    return np.asarray(Image.fromarray(ids).resize(size[::-1], Image.NEAREST))


def _artifact(bundle: Path, meta: dict) -> Path:
    entry = Path(meta["artifact"]["file"])
    if entry.is_absolute() or ".." in entry.parts or not (bundle / entry).resolve().is_relative_to(bundle.resolve()):
        raise BundleMismatch(f"{bundle / 'model.json'}: artifact.file {str(entry)!r} points outside the bundle")
    return bundle / entry


def _sha256(path: Path) -> str:
    """As edgeseg computes it: the file's bytes, or a directory's files' names and bytes."""
    import hashlib

    digest = hashlib.sha256()
    for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
        if file != path:
            digest.update(file.relative_to(path).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _open(artifact: Path, runtime: str, threads: int | None, compute: str = "f32", video: bool = False):
    """(a function batch -> first output, the precision it computes in) for onnxruntime
    (.onnx/.ort), openvino (.xml/.onnx), litert (.tflite) or executorch (.pte)."""
    if compute not in COMPUTE:
        raise SystemExit(f"unknown compute precision {compute!r}: use {', '.join(COMPUTE)}")
    if runtime == "openvino":
        return _open_openvino(artifact, threads, compute)
    if compute != "f32":
        raise SystemExit(f"{runtime} computes in the precision the file holds: use --compute f32 or --runtime openvino")
    return _open_fixed(artifact, runtime, threads, video), "f32"


def _open_openvino(artifact: Path, threads: int | None, compute: str):
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": compute}  # the CPU plugin would otherwise pick bf16 itself
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(str(artifact), "CPU", config)
    request = compiled.create_infer_request()

    def run(batch):
        # shared, not copied: the caller reads the output before the next call (copying out
        # OpenVINO's 7.6 MB of 11x360x480 logits added 3 ms to a 5 ms int8 inference)
        request.infer({0: batch}, share_inputs=True, share_outputs=True)
        return request.get_output_tensor(0).data

    return run, compiled.get_property("INFERENCE_PRECISION_HINT").to_string()


def _open_fixed(artifact: Path, runtime: str, threads: int | None, video: bool = False):
    """The runtimes that compute in the precision the file holds."""
    if runtime == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        if video:  # ORT's idle threads spin after each run, taking the cores FFmpeg's threads decode
            # and encode on: a 480x360 H.264 frame decoded in 4.1 ms beside them, 1.1 ms without.
            # Images decode on the calling thread, which spinning leaves alone (0.6 ms faster with it).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(artifact), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda batch: session.run(None, {name: batch})[0]
    if runtime == "litert":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(artifact), num_threads=threads)
        interpreter.allocate_tensors()
        tensor_in = interpreter.get_input_details()[0]["index"]
        tensor_out = interpreter.get_output_details()[0]["index"]

        def run(batch):
            interpreter.set_tensor(tensor_in, batch)
            interpreter.invoke()
            return interpreter.get_tensor(tensor_out)

        return run
    if runtime == "executorch":
        import torch  # ExecuTorch's Python runtime takes and returns torch tensors
        from executorch.runtime import Runtime

        method = Runtime.get().load_program(artifact).load_method("forward")
        return lambda batch: method.execute([torch.from_numpy(batch)])[0].numpy()
    raise SystemExit(f"unknown runtime {runtime!r}: use {', '.join(RUNTIMES)}")


VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v")
CAMERA_FORMATS = {"linux": "v4l2", "darwin": "avfoundation"}  # FFmpeg's capture devices


def is_video(source: str) -> bool:
    """A video file by its suffix, or a camera index (0, 1, ...)."""
    return source.isdigit() or Path(source).suffix.lower() in VIDEO_SUFFIXES


def summarise(frames_ms: list[dict[str, float]]) -> dict:
    """Per-stage and total p50/p99 milliseconds over frames, and frames per second at batch 1."""
    stages = {stage: [ms[stage] for ms in frames_ms] for stage in frames_ms[0]}
    totals = [sum(ms.values()) for ms in frames_ms]

    def percentiles(values: list[float]) -> dict:
        return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99))}

    return {
        "frames": len(frames_ms),
        "stages": {stage: percentiles(values) for stage, values in stages.items()},
        "total": percentiles(totals),
        "fps": len(totals) / (sum(totals) / 1e3),
    }


def speed_line(summary: dict) -> str:
    """'decode 3.9 | resize 0.0 | ... ms p50, 12.3 ms total, 81 FPS' (Ultralytics prints the like)."""
    stages = " | ".join(f"{stage} {value['p50_ms']:.1f}" for stage, value in summary["stages"].items())
    return f"{stages} ms p50, {summary['total']['p50_ms']:.1f} ms total, {summary['fps']:.0f} FPS"


def segment_video(segmenter: Segmenter, source: str, out: Path, alpha: float = 0.5, progress=None) -> dict:
    """A video file, or a camera index, through the model, frame by frame. Writes
    <stem>_overlay.mp4 (H.264) and <stem>_classes.mkv (FFV1 gray, lossless: each pixel is its
    class id; read it back with PyAV's frame.to_ndarray(format="gray")). Needs PyAV (pip install
    av). Open the segmenter with ``video=True``: the runtime then leaves FFmpeg's threads the cores.
    Both files appear whole or not at all; a camera stops at Ctrl-C and keeps what it recorded.

    Returns:
        summarise()'s figures over the frames (stages decode ... colour, encode) and the paths.
    """
    import av

    camera = source.isdigit()
    stem = f"camera{source}" if camera else Path(source).stem
    targets = {"overlay": out / f"{stem}_overlay.mp4", "classes": out / f"{stem}_classes.mkv"}
    parts = {kind: path.with_name(f".{path.name}.part") for kind, path in targets.items()}
    frames_ms: list[dict[str, float]] = []
    started = time.perf_counter()
    try:
        with _open_video(av, source, camera) as reader:
            if not reader.streams.video:
                raise ValueError(f"{source}: no video stream in the file")
            with _VideoWriter(av, parts, reader.streams.video[0]) as writer:
                _frames_through(segmenter, reader, writer, alpha, frames_ms, progress, camera)
        if not frames_ms:
            raise ValueError(f"{source}: no video frame decodes")
    except BaseException:
        for part in parts.values():
            part.unlink(missing_ok=True)
        raise
    for kind, part in parts.items():
        part.replace(targets[kind])
    summary = summarise(frames_ms)
    summary["wall_fps"] = len(frames_ms) / (time.perf_counter() - started)
    return summary | {kind: str(path) for kind, path in targets.items()}


def _frames_through(segmenter, reader, writer, alpha, frames_ms, progress, camera: bool) -> None:
    """Decode, segment and encode each frame in turn, timing every stage; the progress line twice
    a second. One frame at a time: decoding and encoding on threads beside the model gave the
    same frame rate on 2 cores (80 FPS) and slowed each stage, so a frame's latency is its sum."""
    stream = reader.streams.video[0]
    stream.thread_type = "SLICE"  # frame threads would hold frames back and compete with the model
    total, shown = stream.frames, time.perf_counter()
    decoded = reader.decode(stream)
    try:
        while True:
            clock = Clock()
            frame = next(decoded, None)
            if frame is None:
                break
            rgb = clock("decode", frame.to_ndarray(format="rgb24"))
            result = segmenter.segment(rgb, alpha)
            encoding = Clock()  # started before the write below runs
            encoding("encode", writer.write(frame, result))
            frames_ms.append(clock.ms | result.ms | encoding.ms)
            if progress and time.perf_counter() - shown > 0.5:
                shown = time.perf_counter()
                counted = f"{len(frames_ms)}/{total}" if total else str(len(frames_ms))
                progress(f"frame {counted}: {speed_line(summarise(frames_ms[-30:]))}")
    except KeyboardInterrupt:
        if not camera:
            raise


def _open_video(av, source: str, camera: bool):
    if not camera:
        return av.open(source)
    device = f"/dev/video{source}" if sys.platform == "linux" else source
    if sys.platform not in CAMERA_FORMATS or (sys.platform == "linux" and not Path(device).exists()):
        raise ValueError(f"camera {source}: no such capture device here ({device})")
    return av.open(device, format=CAMERA_FORMATS[sys.platform])


class _VideoWriter:
    """The overlay (H.264, the frame's rate and time stamps) and the class-id stream (FFV1 gray)."""

    def __init__(self, av, parts: dict[str, Path], source_stream):
        rate = source_stream.average_rate or 30
        self._av, self._containers, self._streams = av, {}, {}
        codecs = {"overlay": ("libx264", "mp4"), "classes": ("ffv1", "matroska")}
        for kind, (codec, container_format) in codecs.items():
            container = av.open(str(parts[kind]), "w", format=container_format)
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height = source_stream.width, source_stream.height
            even = stream.width % 2 == 0 and stream.height % 2 == 0
            stream.pix_fmt = "gray" if kind == "classes" else "yuv420p" if even else "yuv444p"
            if kind == "overlay":
                stream.options = {"preset": "ultrafast", "crf": "20"}
            self._containers[kind], self._streams[kind] = container, stream

    def write(self, source_frame, result: Frame) -> None:
        pictures = {
            "overlay": self._av.VideoFrame.from_image(result.overlay),
            "classes": self._av.VideoFrame.from_ndarray(result.classes, format="gray"),
        }
        for kind, picture in pictures.items():
            picture.pts, picture.time_base = source_frame.pts, source_frame.time_base
            self._containers[kind].mux(self._streams[kind].encode(picture))

    def __enter__(self):
        return self

    def __exit__(self, *failure):
        for kind, container in self._containers.items():
            if failure[0] is None:
                container.mux(self._streams[kind].encode(None))  # flush the encoders' delayed frames
            container.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="bundle directory (holds model.json)")
    parser.add_argument("inputs", nargs="+", help="image files, video files (needs PyAV), or a camera index")
    parser.add_argument("--out", default="overlays", help="output directory")
    parser.add_argument("--runtime", choices=RUNTIMES, help="default: from the artifact type")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--compute", choices=COMPUTE, help="OpenVINO's precision (default: model.json deployment, f32)")
    args = parser.parse_args(argv)
    videos = [s for s in args.inputs if is_video(s)]
    try:
        segmenter = Segmenter(args.bundle, args.runtime, args.threads, args.compute, video=bool(videos))
    except BundleMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(8) from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = [Path(s) for s in args.inputs if s not in videos]
    for source in videos:
        progress = ProgressLine()
        try:
            summary = segment_video(segmenter, source, out, progress=progress)
        except (ValueError, OSError) as exc:  # PyAV's errors for unreadable input are both
            print(f"error: {source}: {exc}" if source not in str(exc) else f"error: {exc}", file=sys.stderr)
            raise SystemExit(4) from None
        progress.end()
        print(summary["overlay"])
        print(f"{source}: {summary['frames']} frames, {speed_line(summary)}", file=sys.stderr)
    if images:
        frames_ms = _segment_images(segmenter, images, out)
        print(f"{len(images)} images: {speed_line(summarise(frames_ms))}", file=sys.stderr)


def _segment_images(segmenter: Segmenter, images: list[Path], out: Path) -> list[dict[str, float]]:
    """<stem>_overlay.png and <stem>_classes.png per image; each image's stage timings."""
    frames_ms = []
    for path in images:
        clock = Clock()
        rgb = clock("decode", read_rgb(path))
        result = segmenter.segment(rgb)
        frames_ms.append(clock.ms | result.ms)
        result.overlay.save(out / f"{path.stem}_overlay.png")
        Image.fromarray(result.classes).save(out / f"{path.stem}_classes.png")
        print(out / f"{path.stem}_overlay.png")
    return frames_ms


class ProgressLine:
    """segment_video's progress: one line rewritten in place on a terminal; in a log, a line
    every ``every_s`` seconds."""

    def __init__(self, stream=sys.stderr, every_s: float = 10.0):
        self.stream, self.every_s, self._printed = stream, every_s, 0.0
        self.live = stream.isatty()

    def __call__(self, line: str) -> None:
        if self.live:
            print(f"\r{line}\033[K", end="", file=self.stream, flush=True)
        elif time.monotonic() - self._printed >= self.every_s:
            self._printed = time.monotonic()
            print(line, file=self.stream, flush=True)

    def end(self) -> None:
        if self.live:
            print(file=self.stream)


if __name__ == "__main__":
    main()
