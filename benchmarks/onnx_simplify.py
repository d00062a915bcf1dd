"""Which ONNX simplification to ship: none, onnxslim, or ONNX Runtime's offline optimisation.

    python benchmarks/onnx_simplify.py

Exports LRASPP on MobileNetV3-Large and EfficientNet-Lite0 (random init, 360x480), then for
each variant records node count, file size, whether OpenVINO loads it, and batch-1 latency in
ONNX Runtime and OpenVINO (f32), interleaved rounds on 2 threads. ORT's offline optimisation is
saved at ORT_ENABLE_BASIC (the highest level whose output is portable: EXTENDED and ALL emit
ORT-only fused ops that other runtimes cannot read).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort
import torch

from edgeseg.bench.environment import environment
from edgeseg.exporters.onnx_export import simplify, torch_to_onnx
from edgeseg.models import build_model
from edgeseg.recipe import ModelSpec
from edgeseg.runtimes import open_session

sys.path.insert(0, str(Path(__file__).parent))
from export_artifacts import timed_rounds  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def ort_basic(src: Path, dst: Path) -> None:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])


def main() -> dict:
    torch.set_num_threads(2)
    results = {}
    work = Path(tempfile.mkdtemp())
    for backbone in ("mobilenet_v3_large", "efficientnet_lite0"):
        torch.manual_seed(0)
        model = build_model(ModelSpec(backbone=backbone, backbone_weights="none"), 11, load_pretrained=False).eval()
        x = torch.randn(1, 3, 360, 480)
        raw = work / f"{backbone}-raw.onnx"
        torch_to_onnx(model, x, raw, opset=17, output_kind="logits", dynamic_batch=False, dynamic_hw=False)
        slim = work / f"{backbone}-onnxslim.onnx"
        slim.write_bytes(raw.read_bytes())
        simplify(slim)
        basic = work / f"{backbone}-ort-basic.onnx"
        ort_basic(raw, basic)
        variants = {"raw": raw, "onnxslim": slim, "ort_basic": basic}
        runners = {}
        facts = {}
        for name, path in variants.items():
            facts[name] = {
                "nodes": len(onnx.load(str(path)).graph.node),
                "size_mb": round(path.stat().st_size / 1e6, 3),
            }
            runners[f"{name} onnxruntime"] = open_session(path, "onnxruntime", threads=2).run
            try:
                runners[f"{name} openvino"] = open_session(path, "openvino", threads=2).run
                facts[name]["openvino_loads"] = True
            except Exception as exc:  # noqa: BLE001 - recorded, not hidden
                facts[name]["openvino_loads"] = f"{type(exc).__name__}: {exc}"[:200]
        latency = timed_rounds(runners, x.numpy(), warmup=10, iters=30, rounds=5)
        for name in variants:
            for runtime in ("onnxruntime", "openvino"):
                key = f"{name} {runtime}"
                if key in latency:
                    facts[name][f"{runtime}_p50_ms"] = latency[key]["p50_ms"]
                    facts[name][f"{runtime}_round_p50_cv"] = latency[key]["round_p50_cv"]
        results[backbone] = facts
        print(backbone, json.dumps(facts, indent=1))
    out = {
        "benchmark": "onnx_simplify",
        "command": "python benchmarks/onnx_simplify.py",
        "input": [1, 3, 360, 480],
        "results": results,
        "environment": environment(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "onnx_simplify.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
