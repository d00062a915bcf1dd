"""What the output head costs in mIoU: class ids from the logits at lower strides.

    python benchmarks/output_head.py runs/camvid_lraspp_efficientnet_lite0/train/best.pt \
        --name output_head_camvid_lite0

LRASPP's classifier gives logits at stride 8 (11x45x60 for 360x480), and the graph resizes them
bilinearly to full size before the argmax: 7.6 MB of float logits a frame, a float resize inside
the int8 graph, and an argmax over every pixel. Scored here in PyTorch fp32 on the checkpoint's
val split, each head variant from the same stride-8 logits: bilinear to full size then argmax
(today's), argmax at stride 8 then nearest-neighbour ids, and bilinear x2 or x4 then argmax then
nearest ids the rest of the way. Writes results/<name>.json with the environment.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edgeseg.bench.environment import environment

RESULTS = Path(__file__).parent / "results"
VARIANTS = {  # name -> bilinear factor on the stride-8 logits before the argmax (None: to full size)
    "bilinear to full size, argmax (today)": None,
    "argmax at stride 8, nearest x8": 1,
    "bilinear x2, argmax at stride 4, nearest x4": 2,
    "bilinear x4, argmax at stride 2, nearest x2": 4,
}


def class_ids(logits, size: tuple[int, int], factor: int | None):
    import torch.nn.functional as F

    if factor is None:
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False).argmax(1)
    if factor > 1:
        logits = F.interpolate(logits, scale_factor=factor, mode="bilinear", align_corners=False)
    ids = logits.argmax(1, keepdim=True).float()
    return F.interpolate(ids, size=size, mode="nearest")[:, 0].long()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--split", default="val")
    args = parser.parse_args()
    import torch

    from edgeseg.data import load_split
    from edgeseg.data.transforms import normalize
    from edgeseg.eval.metrics import confusion_matrix, summarize
    from edgeseg.models.checkpoint import load_model

    torch.set_num_threads(2)
    loaded = load_model(args.checkpoint)
    model, names = loaded.model, list(loaded.class_names)
    samples = load_split(loaded.recipe.data, args.split, loaded.recipe.seed)
    matrices = {name: np.zeros((len(names),) * 2, np.int64) for name in VARIANTS}
    with torch.inference_mode():
        for image, mask in zip(samples.images, samples.masks, strict=True):
            x = normalize(image[None], loaded.mean, loaded.std)
            logits = model.classifier(model.backbone(x))  # the head before its final resize
            for name, factor in VARIANTS.items():
                ids = class_ids(logits, tuple(x.shape[-2:]), factor)[0].numpy().astype(np.uint8)
                matrices[name] += confusion_matrix(ids, np.asarray(mask), len(names))
    scores = {name: summarize(cm, names) for name, cm in matrices.items()}
    today = scores["bilinear to full size, argmax (today)"]["miou"]
    rows = [
        {
            "head": name,
            "miou": round(s["miou"], 2),
            "delta": round(s["miou"] - today, 2),
            "per_class_iou": s["per_class_iou"],
        }
        for name, s in scores.items()
    ]
    document = {
        "benchmark": "output_head",
        "command": " ".join(sys.argv),
        "checkpoint": str(args.checkpoint),
        "split": args.split,
        "images": len(samples.images),
        "stride8_logits_shape": list(logits.shape),
        "rows": rows,
        "environment": environment(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(document, indent=2))
    for row in rows:
        print(f"{row['head']}: mIoU {row['miou']:.2f} ({row['delta']:+.2f})")
    print(f"-> {RESULTS / f'{args.name}.json'}")


if __name__ == "__main__":
    main()
