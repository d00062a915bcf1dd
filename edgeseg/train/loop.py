"""Fine-tuning: one function from a recipe to best/last checkpoints and a per-epoch history.

Determinism: every epoch reseeds torch's RNG and the sampler from (seed, epoch), so a run
resumed from its last checkpoint replays exactly the epochs an uninterrupted run would have
(bit-identical on CPU; on CUDA up to the nondeterminism of its kernels).

Multi-process training (``torchrun``): gloo on CPU, NCCL on CUDA; each rank trains on its shard,
validation confusion matrices are summed over ranks, and rank 0 alone writes checkpoints.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from edgeseg import __version__
from edgeseg._io import write_text_atomic
from edgeseg.data import DatasetInfo, dataset_info, load_split
from edgeseg.data.transforms import SegmentationDataset, normalize, train_transform
from edgeseg.eval import evaluate_samples
from edgeseg.eval.metrics import summarize
from edgeseg.models import build_model, preprocessing
from edgeseg.errors import CheckpointError, RecipeError
from edgeseg.recipe import DistillSpec, Recipe
from edgeseg.train.checkpoint import FORMAT, read_checkpoint, save_atomic
from edgeseg.train.distill import Distillation
from edgeseg.train.schedule import make_loss, make_optimizer, make_scheduler, median_frequency_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    best: Path
    last: Path
    history: list[dict]
    best_miou: float


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: torch.device) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size())


def training_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def autocast_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """fp16 on CUDA; bf16 on CPUs with native bf16 (e.g. AVX512-BF16/AMX), else full fp32."""
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.float16
    return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None


def train_size(recipe: Recipe, info: DatasetInfo, first_image: torch.Tensor) -> tuple[int, int]:
    """Crop size for training batches: augment.crop, else image_size, else native size."""
    data = recipe.data
    return tuple(data.augment.crop or data.image_size or info.native_size or first_image.shape[-2:])


def fit(
    recipe: Recipe, out_dir: Path, *, resume: bool = False, on_epoch: Callable[[dict], None] | None = None,
    show_progress: bool = True, model: torch.nn.Module | None = None, extra_facts: dict | None = None,
    teacher: torch.nn.Module | None = None, distill: DistillSpec | None = None,
) -> TrainResult:
    """Fine-tune the recipe's model; write ``best.pt``, ``last.pt`` and ``history.json``.

    Args:
        recipe: the validated recipe.
        out_dir: where checkpoints go (created).
        resume: continue from ``out_dir/last.pt`` if it exists.
        on_epoch: called with each epoch's record (after validation).
        show_progress: draw a rich progress bar (rank 0 only).
        model: train this model instead of building the recipe's (e.g. one with quantizers in
            place, for quantization-aware training).
        extra_facts: more entries for every checkpoint (e.g. how to rebuild that model).
        teacher: distil from this frozen model (e.g. the model before pruning) ...
        distill: ... with this temperature and weight.

    Returns:
        Paths of the best and last checkpoints, the history and the best val mIoU.
    """
    spec = recipe.train
    if spec.threads:
        torch.set_num_threads(spec.threads)
    device = training_device()
    ddp = _init_distributed(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"

    info = dataset_info(recipe.data)
    train_samples = load_split(recipe.data, "train", recipe.seed)
    val_samples = load_split(recipe.data, "val", recipe.seed)
    size = train_size(recipe, info, train_samples.images[0])
    pre = preprocessing(recipe.model)
    amp = autocast_dtype(device, spec.amp)

    torch.manual_seed(recipe.seed)
    model = (model if model is not None else build_model(recipe.model, info.num_classes)).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    weights = median_frequency_weights(train_samples, info.num_classes).to(device) if spec.class_weights == "median_frequency" else None
    criterion = make_loss(spec, weights)
    loss_fn = _task_loss(criterion)
    if teacher is not None and distill is not None and distill.enabled:
        teacher = teacher.to(device, memory_format=torch.channels_last if device.type == "cpu" else torch.preserve_format)
        loss_fn = Distillation(criterion, teacher, distill.temperature, distill.weight, amp)

    dataset = SegmentationDataset(train_samples, train_transform(recipe.data.augment, size, info.native_size))
    per_rank_batches = len(dataset) // (spec.batch_size * ddp.world)
    if per_rank_batches == 0:
        raise RecipeError(f"train.batch_size: {spec.batch_size} x {ddp.world} process(es) exceeds the {len(dataset)} training images")
    state = {"epoch": 0, "best_miou": -1.0, "history": [], "stale": 0, "elapsed_s": 0.0}
    clock = {"started": time.monotonic()}
    budget_used = None
    if spec.time_budget_min:
        def budget_used() -> float:
            return (time.monotonic() - clock["started"]) / (spec.time_budget_min * 60)

    optimizer = make_optimizer(model, spec)
    scheduler = make_scheduler(optimizer, spec, per_rank_batches, budget_used)
    scaler = torch.amp.GradScaler("cuda", enabled=amp is torch.float16)
    if resume and last_path.is_file():
        state = _restore(last_path, recipe, model, optimizer, scheduler, scaler)

    net = model
    if ddp.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    meta = {**checkpoint_facts(recipe, info, size), **(extra_facts or {})}
    clock["started"] = time.monotonic() - state["elapsed_s"]

    for epoch in range(state["epoch"], spec.epochs):
        frozen = epoch < spec.freeze_backbone_epochs
        _set_backbone_frozen(model, frozen)
        torch.manual_seed(recipe.seed * 100003 + epoch)
        loader = _loader(dataset, spec, ddp, recipe.seed, epoch)
        t0 = time.monotonic()
        loss_sum, seen = _train_epoch(net, loader, loss_fn, optimizer, scheduler, scaler, device, pre, amp, epoch, spec.epochs, show_progress and ddp.main)
        train_s = time.monotonic() - t0

        summary = _validate(model, val_samples, info, recipe, device, ddp)
        miou = summary["miou"] or 0.0
        record = {
            "epoch": epoch + 1,
            "loss": loss_sum / max(seen, 1),
            "lr": optimizer.param_groups[-1]["lr"],
            "images_per_s": seen * ddp.world / max(train_s, 1e-9),
            "val_miou": miou,
            "val_pixel_accuracy": summary["pixel_accuracy"],
            "backbone_frozen": frozen,
            "elapsed_s": time.monotonic() - clock["started"],
        }
        state["history"].append(record)
        improved = miou > state["best_miou"]
        state.update(epoch=epoch + 1, elapsed_s=record["elapsed_s"], stale=0 if improved else state["stale"] + 1)
        if improved:
            state["best_miou"] = miou
        if ddp.main:
            ckpt = {**meta, **_train_state(model, optimizer, scheduler, scaler, state), "precision": str(amp or torch.float32)}
            if improved:  # best.pt is what gets deployed: weights and facts, no optimizer state
                save_atomic({**meta, "model": ckpt["model"], "epoch": epoch + 1, "val_metrics": summary, "precision": ckpt["precision"]}, best_path)
            save_atomic(ckpt, last_path)
            write_text_atomic(out_dir / "history.json", json.dumps(state["history"], indent=2))
            log.info(
                "epoch %d/%d: loss %.4f  lr %.2e  %.1f img/s  val mIoU %.2f%s", record["epoch"], spec.epochs,
                record["loss"], record["lr"], record["images_per_s"], miou, " (best)" if improved else "",
            )
            if on_epoch:
                on_epoch(record)
        if spec.early_stopping_patience and state["stale"] >= spec.early_stopping_patience:
            break
        if budget_used is not None and budget_used() >= 1.0:
            break

    if ddp.world > 1:
        dist.barrier()
    return TrainResult(best_path, last_path, state["history"], state["best_miou"])


def checkpoint_facts(recipe: Recipe, info: DatasetInfo, size: tuple[int, int]) -> dict:
    """What eval, predict and the exporters need besides the weights."""
    pre = preprocessing(recipe.model)
    return {
        "format": FORMAT,
        "recipe": recipe.model_dump(mode="json"),
        "class_names": list(info.class_names),
        "palette": [list(c) for c in info.palette],
        "mean": list(pre.mean),
        "std": list(pre.std),
        "input_size": list(recipe.data.image_size or info.native_size or size),
        "versions": {"edgeseg": __version__, "torch": str(torch.__version__)},
    }


def _validate(model, val_samples, info: DatasetInfo, recipe: Recipe, device, ddp: _Dist) -> dict:
    """Val metrics; with several processes each scores its shard and the matrices are summed."""
    pre = preprocessing(recipe.model)
    cm, _ = evaluate_samples(
        model, val_samples, class_names=info.class_names, mean=pre.mean, std=pre.std,
        input_size=recipe.data.image_size, device=device, indices=range(ddp.rank, len(val_samples), ddp.world),
    )
    if ddp.world > 1:
        summed = torch.from_numpy(cm)
        dist.all_reduce(summed)
        cm = summed.numpy()
    return summarize(cm, info.class_names)


def _loader(dataset, spec, ddp: _Dist, seed: int, epoch: int):
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

    if ddp.world > 1:
        sampler = DistributedSampler(dataset, num_replicas=ddp.world, rank=ddp.rank, shuffle=True, seed=seed, drop_last=True)
        sampler.set_epoch(epoch)
    else:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
    return DataLoader(
        dataset, batch_size=spec.batch_size, sampler=sampler, drop_last=True, num_workers=spec.workers,
        generator=torch.Generator().manual_seed(seed + epoch), persistent_workers=False,
    )


def _train_epoch(net, loader, loss_fn, optimizer, scheduler, scaler, device, pre, amp, epoch, epochs, show) -> tuple[float, int]:
    from edgeseg.console import progress

    net.train()
    loss_sum, seen = 0.0, 0
    t0 = time.monotonic()
    detail = "loss {task.fields[loss]:.3f} lr {task.fields[lr]:.2e} {task.fields[ips]:.1f} img/s"
    with progress(f"epoch {epoch + 1}/{epochs}", len(loader), detail=detail, enabled=show, loss=0.0, lr=0.0, ips=0.0) as advance:
        for images, masks in loader:
            x = normalize(images.to(device, non_blocking=True), pre.mean, pre.std)
            if device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            target = masks.to(device, non_blocking=True).long()
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                logits = net(x)
            loss = loss_fn(x, logits, target)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_sum += float(loss.detach()) * len(images)
            seen += len(images)
            advance(loss=loss_sum / seen, lr=optimizer.param_groups[-1]["lr"], ips=seen / max(time.monotonic() - t0, 1e-9))
    return loss_sum, seen


def _task_loss(criterion) -> Callable:
    def loss(x, logits, target):
        return criterion(logits.float(), target)

    return loss


def _set_backbone_frozen(model, frozen: bool) -> None:
    for p in model.backbone.parameters():
        p.requires_grad_(not frozen)


def _train_state(model, optimizer, scheduler, scaler, state: dict) -> dict:
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": torch.get_rng_state(),
        "epoch": state["epoch"],
        "best_miou": state["best_miou"],
        "history": state["history"],
        "stale": state["stale"],
        "elapsed_s": state["elapsed_s"],
    }


def _restore(path: Path, recipe: Recipe, model, optimizer, scheduler, scaler) -> dict:
    data = read_checkpoint(path)
    if data["recipe"] != recipe.model_dump(mode="json"):
        raise CheckpointError(f"{path}: was written by a different recipe; resume with the same recipe or start a new run")
    model.load_state_dict(data["model"])
    optimizer.load_state_dict(data["optimizer"])
    scheduler.load_state_dict(data["scheduler"])
    scaler.load_state_dict(data["scaler"])
    torch.set_rng_state(data["rng"])
    return {k: data[k] for k in ("epoch", "best_miou", "history", "stale", "elapsed_s")}
