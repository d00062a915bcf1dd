"""Frame to class map: the latency a user feels, beside the model-only figure.

Each evaluation image is encoded as a file would hold it (JPEG, as a camera sends, or PNG), then
run through the deployment kit's own path (``edgeseg.predict.kit``, the file apps copy), each
stage timed: decode, resize, normalise, infer, argmax, upsample, colour. A checkpoint runs the
PyTorch path of ``edgeseg predict`` instead. numpy and Pillow only for bundles: no torch.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from edgeseg.predict import kit

ENCODINGS = {"jpeg": {"format": "JPEG", "quality": 90}, "png": {"format": "PNG"}}
MIN_FRAMES = 30  # frames timed, cycling through the images when there are fewer
WARMUP_FRAMES = 5


def end_to_end(spec, meta: dict, runtime: str, images: list[np.ndarray], model_only_p50: float | None) -> dict:
    """Per-stage and total p50/p99, FPS at batch 1, and the total's ratio to model-only p50."""
    from edgeseg.predict.segmenters import open_segmenter

    if runtime not in kit.RUNTIMES and runtime != "torch":
        return {"skipped": f"the deployment kit runs {', '.join(kit.RUNTIMES)}; this is {runtime}"}
    artifact = Path(spec.artifact)
    model = artifact if artifact.is_dir() or artifact.suffix == ".pt" else artifact.parent
    kit_runtime = None if runtime == "torch" else runtime
    segmenter = open_segmenter(model, kit_runtime, spec.threads, spec.precision_hint)
    files = [_encoded(image, spec.frame_encoding) for image in images]
    for data in files[:1] * WARMUP_FRAMES:
        _frame(segmenter, data)
    frames_ms = [_frame(segmenter, files[i % len(files)]) for i in range(max(len(files), MIN_FRAMES))]
    summary = kit.summarise(frames_ms)
    ratio = summary["total"]["p50_ms"] / model_only_p50 if model_only_p50 else None
    return {
        "encoding": spec.frame_encoding,
        "images": len(files),
        "mean_file_kb": round(sum(map(len, files)) / len(files) / 1e3, 1),
        **summary,
        "model_only_p50_ms": model_only_p50,
        "ratio_p50": None if ratio is None else round(ratio, 3),
    }


def _frame(segmenter, data: bytes) -> dict[str, float]:
    clock = kit.Clock()
    rgb = clock("decode", kit.read_rgb(io.BytesIO(data)))
    return clock.ms | segmenter.segment(rgb).ms


def _encoded(image: np.ndarray, encoding: str) -> bytes:
    from PIL import Image

    stream = io.BytesIO()
    Image.fromarray(image).save(stream, **ENCODINGS[encoding])
    return stream.getvalue()
