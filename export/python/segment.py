#!/usr/bin/env python3
"""Run an edgeseg bundle on images: numpy + Pillow + one runtime. No edgeseg.

    python segment.py runs/quickstart/export-onnx-int8 street.jpg --out overlays/
    python segment.py runs/quickstart/export-openvino-int8 street.jpg --runtime openvino
    python segment.py runs/quickstart/export-litert-int8 street.jpg        # ai-edge-litert, no torch
    python segment.py runs/quickstart/export-executorch-fp32 street.jpg    # executorch (needs torch)

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
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

RUNTIMES = ("onnxruntime", "openvino", "litert", "executorch")
DEFAULT_RUNTIME = {".xml": "openvino", ".tflite": "litert", ".pte": "executorch"}
COMPUTE = ("f32", "bf16", "f16")  # OpenVINO's inference precisions; the others compute what the file holds


class BundleMismatch(ValueError):
    """model.json does not describe the artifact beside it (exit code 8 from the command line)."""


class Segmenter:
    """Loads a bundle directory, checks its proof, and turns RGB images into class maps."""

    def __init__(
        self, bundle: str | Path, runtime: str | None = None, threads: int | None = None, compute: str | None = None
    ):
        self.bundle = Path(bundle)
        self.meta = json.loads((self.bundle / "model.json").read_text())
        artifact = _artifact(self.bundle, self.meta)
        deployment = self.meta.get("deployment") or {}
        self.runtime = runtime or deployment.get("runtime") or DEFAULT_RUNTIME.get(artifact.suffix, "onnxruntime")
        # the deployed precision goes with the deployed runtime only: another runtime computes f32
        asked = compute or (deployment.get("compute") if self.runtime == deployment.get("runtime") else None)
        self._run, self.compute = _open(artifact, self.runtime, threads, asked or "f32")
        if asked and self.compute != asked:  # OpenVINO computes f32 where the CPU lacks bf16: say so
            print(f"warning: {self.runtime} computes in {self.compute} here, not {asked}", file=sys.stderr)
        self.channels_last = self.meta["input"].get("layout") == "NHWC"
        self.height, self.width = self.meta["input"]["size"]
        self.palette = np.zeros((256, 3), np.uint8)
        self.palette[: len(self.meta["classes"]["palette"])] = self.meta["classes"]["palette"]
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
        output = self._run(self.preprocess(Image.fromarray(image)))[0]
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

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """RGB image -> the 1x3xHxW (or 1xHxWx3) tensor model.json describes."""
        rgb = image.convert("RGB").resize((self.width, self.height), Image.BILINEAR)
        pixels = np.asarray(rgb)[None]  # NHWC uint8
        pre = self.meta["input"]["preprocessing"]
        if not pre["in_graph"]:
            mean = np.asarray(pre["mean"], np.float32)
            std = np.asarray(pre["std"], np.float32)
            pixels = (pixels.astype(np.float32) / 255.0 - mean) / std
        quantized = self.meta["input"].get("quantization")
        if quantized:  # an int8 input tensor: q = clip(round(x / scale) + zero_point)
            q = np.round(pixels / quantized["scale"]) + quantized["zero_point"]
            pixels = np.clip(q, -128, 127).astype(np.int8)
        return np.ascontiguousarray(pixels if self.channels_last else pixels.transpose(0, 3, 1, 2))

    def classes(self, image: Image.Image) -> np.ndarray:
        """HxW uint8 class ids at the image's own size."""
        output = self._run(self.preprocess(image))
        class_map = output[0] if self.meta["output"]["kind"] == "class_map" else output[0].argmax(0)
        full = Image.fromarray(class_map.astype(np.uint8)).resize(image.size, Image.NEAREST)
        return np.asarray(full)

    def overlay(self, image: Image.Image, class_map: np.ndarray, alpha: float = 0.5) -> Image.Image:
        rgb = np.asarray(image.convert("RGB"), np.float32)
        blended = rgb * (1 - alpha) + self.palette[class_map].astype(np.float32) * alpha
        return Image.fromarray(blended.round().astype(np.uint8))


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


def _open(artifact: Path, runtime: str, threads: int | None, compute: str = "f32"):
    """(a function batch -> first output, the precision it computes in) for onnxruntime
    (.onnx/.ort), openvino (.xml/.onnx), litert (.tflite) or executorch (.pte)."""
    if compute not in COMPUTE:
        raise SystemExit(f"unknown compute precision {compute!r}: use {', '.join(COMPUTE)}")
    if runtime == "openvino":
        return _open_openvino(artifact, threads, compute)
    if compute != "f32":
        raise SystemExit(f"{runtime} computes in the precision the file holds: use --compute f32 or --runtime openvino")
    return _open_fixed(artifact, runtime, threads), "f32"


def _open_openvino(artifact: Path, threads: int | None, compute: str):
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": compute}  # the CPU plugin would otherwise pick bf16 itself
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(str(artifact), "CPU", config)
    request = compiled.create_infer_request()

    def run(batch):
        request.infer({0: batch})
        return request.get_output_tensor(0).data.copy()

    return run, compiled.get_property("INFERENCE_PRECISION_HINT").to_string()


def _open_fixed(artifact: Path, runtime: str, threads: int | None):
    """The runtimes that compute in the precision the file holds."""
    if runtime == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="bundle directory (holds model.json)")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--out", default="overlays", help="output directory")
    parser.add_argument("--runtime", choices=RUNTIMES, help="default: from the artifact type")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--compute", choices=COMPUTE, help="OpenVINO's precision (default: model.json deployment, f32)")
    args = parser.parse_args(argv)
    try:
        segmenter = Segmenter(args.bundle, args.runtime, args.threads, args.compute)
    except BundleMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(8) from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in map(Path, args.images):
        image = Image.open(path)
        class_map = segmenter.classes(image)
        segmenter.overlay(image, class_map).save(out / f"{path.stem}_overlay.png")
        Image.fromarray(class_map).save(out / f"{path.stem}_classes.png")
        print(out / f"{path.stem}_overlay.png")


if __name__ == "__main__":
    main()
