"""Training throughput: the full loop (loader and augmentation included) against the bare model
step on batches already in memory, at 360x480.

    python benchmarks/train_throughput.py recipes/camvid_lraspp_efficientnet_lite0.yaml --steps 20

Both paths run the same model, optimizer, autocast and channels-last layout; the loop path is
edgeseg's own training epoch over the real DataLoader. Writes
benchmarks/results/train_throughput.json with the environment and images/s of each.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch

from edgeseg.bench.environment import environment
from edgeseg.data import dataset_info, load_split
from edgeseg.data.transforms import SegmentationDataset, normalize, train_transform
from edgeseg.models import build_model, preprocessing
from edgeseg.recipe import load_recipe
from edgeseg.train import loop
from edgeseg.train.schedule import make_loss, make_optimizer, make_scheduler

RESULTS = Path(__file__).parent / "results"


class _FirstBatches:
    """The first ``n`` batches of a DataLoader, with a length (for the progress bar)."""

    def __init__(self, loader, n: int):
        self.loader, self.n = loader, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.n)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)

    recipe = load_recipe(args.recipe, ["data.augment.crop=[360, 480]"])
    spec = recipe.train
    info = dataset_info(recipe.data)
    samples = load_split(recipe.data, "train", recipe.seed)
    device = torch.device("cpu")
    amp = loop.autocast_dtype(device, spec.amp)
    pre = preprocessing(recipe.model)
    model = build_model(recipe.model, info.num_classes).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, spec)
    scheduler = make_scheduler(optimizer, spec, 1000)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    criterion = make_loss(spec, None)
    dataset = SegmentationDataset(samples, train_transform(recipe.data.augment, (360, 480), info.native_size))

    # 1. Bare step: the same batch, already decoded, augmented and normalised, again and again.
    images, masks = next(iter(loop._loader(dataset, spec, loop._Dist(), recipe.seed, 0)))
    x = normalize(images, pre.mean, pre.std).contiguous(memory_format=torch.channels_last)
    target = masks.long()
    model.train()
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            started = time.perf_counter()
        with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
            logits = model(x)
        loss = criterion(logits.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    bare_ips = args.steps * spec.batch_size / (time.perf_counter() - started)

    # 2. Full loop: edgeseg's training epoch over the real loader (after the same warm-up).
    warm = _FirstBatches(loop._loader(dataset, spec, loop._Dist(), recipe.seed, 1), args.warmup)
    loop._train_epoch(model, warm, criterion, optimizer, scheduler, scaler, device, pre, amp, 0, 1, False)
    batches = _FirstBatches(loop._loader(dataset, spec, loop._Dist(), recipe.seed, 2), args.steps)
    started = time.perf_counter()
    _, seen = loop._train_epoch(model, batches, criterion, optimizer, scheduler, scaler, device, pre, amp, 0, 1, False)
    loop_ips = seen / (time.perf_counter() - started)

    report = {
        "benchmark": "train_throughput",
        "command": " ".join(["python", *sys.argv]),
        "environment": environment(),
        "input_size": [360, 480],
        "batch_size": spec.batch_size,
        "workers": spec.workers,
        "autocast": str(amp),
        "steps": args.steps,
        "bare_step_images_per_s": round(bare_ips, 3),
        "full_loop_images_per_s": round(loop_ips, 3),
        "loop_over_bare": round(loop_ips / bare_ips, 4),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_throughput.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
