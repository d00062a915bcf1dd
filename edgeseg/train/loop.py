"""Fine-tuning: one function from a recipe to best/last checkpoints and a per-epoch history.

Determinism: every epoch reseeds torch's RNG and the sampler from (seed, epoch), so a run
resumed from its last checkpoint replays exactly the epochs an uninterrupted run would have
(bit-identical on CPU; on CUDA up to the nondeterminism of its kernels).

Multi-process training (``torchrun``): gloo on CPU, NCCL on CUDA; each rank trains on its shard,
validation confusion matrices are summed over ranks, and rank 0 alone writes checkpoints.

Callers that train something other than the recipe's fresh model (compression fine-tunes) pass
the ``model``, the ``facts`` its checkpoints must carry, and a ``loss`` hook (distillation).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from edgeseg._io import write_text_atomic
from edgeseg.data import DatasetInfo, dataset_info, load_split, load_training
from edgeseg.data.samples import Samples
from edgeseg.data.splits import selection_split
from edgeseg.data.transforms import SegmentationDataset, normalize, train_transform
from edgeseg.errors import CheckpointError, RecipeError
from edgeseg.eval import evaluate_samples
from edgeseg.eval.metrics import summarize
from edgeseg.models.builders import Preprocessing, build_model, preprocessing
from edgeseg.models.checkpoint import checkpoint_facts, read_checkpoint, save_atomic
from edgeseg.recipe import Recipe
from edgeseg.train.schedule import (
    backbone_stages,
    frozen_stage_count,
    make_loss,
    make_optimizer,
    make_scheduler,
    median_frequency_weights,
)

log = logging.getLogger(__name__)

# (x, logits, target) -> scalar loss
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# Builds the training loss from the task criterion, the device and the autocast dtype.
LossHook = Callable[[torch.nn.Module, torch.device, "torch.dtype | None"], LossFn]


@dataclass(frozen=True)
class TrainResult:
    best: Path
    last: Path
    history: list[dict]
    best_miou: float


@dataclass
class TrainState:
    """What a resumed run continues from (stored in ``last.pt`` under these names)."""

    epoch: int = 0
    best_miou: float = -1.0
    history: list[dict] = field(default_factory=list)
    stale: int = 0  # epochs since the best
    elapsed_s: float = 0.0

    def update(self, record: dict) -> bool:
        """Add an epoch's record; True when it is the best so far."""
        self.history.append(record)
        improved = record["val_miou"] > self.best_miou
        self.epoch, self.elapsed_s = record["epoch"], record["elapsed_s"]
        self.stale = 0 if improved else self.stale + 1
        if improved:
            self.best_miou = record["val_miou"]
        return improved


@dataclass
class Clock:
    """Wall time of a run, counting the time before a resume; the budget's fraction spent."""

    budget_min: float | None
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def resume_at(self, elapsed_s: float) -> None:
        self.started = time.monotonic() - elapsed_s

    def used(self) -> float:
        return self.elapsed() / (self.budget_min * 60)

    @property
    def budget_used(self) -> Callable[[], float] | None:
        """For the LR schedule: decay along the time budget, when there is one."""
        return self.used if self.budget_min else None


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class _Data:
    """The decoded splits and what training needs to know about them."""

    info: DatasetInfo
    train: Samples
    val: Samples
    size: tuple[int, int]
    dataset: SegmentationDataset


@dataclass
class _Trainer:
    """Everything an epoch needs, built once per run."""

    recipe: Recipe
    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    loss: LossFn
    device: torch.device
    ddp: _Dist
    amp: torch.dtype | None
    pre: Preprocessing
    ema: torch.optim.swa_utils.AveragedModel | None = None

    @property
    def deployed(self) -> torch.nn.Module:
        """The weights that are validated, selected and saved as ``best.pt``: the EMA's, if any."""
        return self.ema.module if self.ema is not None else self.model


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
    recipe: Recipe,
    out_dir: Path,
    *,
    resume: bool = False,
    model: torch.nn.Module | None = None,
    facts: dict | None = None,
    loss: LossHook | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    show_progress: bool = True,
    extra_train: Samples | None = None,
    keep: str = "best",
) -> TrainResult:
    """Fine-tune the recipe's model; write ``best.pt``, ``last.pt`` and ``history.json``.

    Args:
        recipe: the validated recipe.
        out_dir: where checkpoints go (created).
        resume: continue from ``out_dir/last.pt`` if it exists.
        model: train this model instead of building the recipe's (e.g. one with quantizers in
            place, for quantization-aware training).
        facts: more entries for every checkpoint (e.g. how to rebuild that model).
        loss: builds the training loss from the task criterion (e.g. distillation from a
            teacher); by default the criterion alone.
        on_epoch: called with each epoch's record (after validation).
        show_progress: draw a rich progress bar (rank 0 only).
        extra_train: more training samples beside the recipe's (pseudo-labelled images).
        keep: ``best`` (the epoch that scores highest on the selection split) or ``last`` as
            ``best.pt``: self-training keeps the last, since the selection split is not the
            domain it adapts to.

    Returns:
        Paths of the best and last checkpoints, the history and the best val mIoU.
    """
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    device = training_device()
    ddp = _init_distributed(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = _load_data(recipe, ddp, extra_train)
    clock = Clock(recipe.train.time_budget_min)
    trainer = _make_trainer(recipe, data, model, loss, device, ddp, clock)
    state = _restore(out_dir / "last.pt", trainer) if resume and (out_dir / "last.pt").is_file() else TrainState()
    if ddp.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        trainer.net = torch.nn.parallel.DistributedDataParallel(trainer.model, device_ids=ids)
    meta = {**checkpoint_facts(recipe, data.info, data.size), **(facts or {})}
    clock.resume_at(state.elapsed_s)
    for epoch in range(state.epoch, recipe.train.epochs):
        record, summary = _epoch(trainer, data, epoch, clock, show_progress and ddp.main)
        improved = state.update(record) or keep == "last"
        if ddp.main:
            _save(out_dir, meta, trainer, state, improved, summary)
            if on_epoch:
                on_epoch(record)
        if _should_stop(recipe, state, clock):
            break
    if ddp.world > 1:
        dist.barrier()
    return TrainResult(out_dir / "best.pt", out_dir / "last.pt", state.history, state.best_miou)


def _load_data(recipe: Recipe, ddp: _Dist, extra: Samples | None = None) -> _Data:
    info = dataset_info(recipe.data)
    train = load_training(recipe.data, recipe.seed)
    if extra is not None:
        train = Samples(train.images + extra.images, train.masks + extra.masks, train.names + extra.names)
    val = load_split(recipe.data, selection_split(recipe.data), recipe.seed)
    size = train_size(recipe, info, train.images[0])
    dataset = SegmentationDataset(train, train_transform(recipe.data.augment, size, info.native_size))
    return _Data(info, train, val, size, dataset)


def _batches_per_rank(recipe: Recipe, data: _Data, ddp: _Dist) -> int:
    batch = recipe.train.batch_size
    count = len(data.dataset) // (batch * ddp.world)
    if count == 0:
        raise RecipeError(
            f"train.batch_size: {batch} x {ddp.world} process(es) exceeds the {len(data.dataset)} training images"
        )
    return count


def _make_trainer(
    recipe: Recipe, data: _Data, model, loss: LossHook | None, device, ddp: _Dist, clock: Clock
) -> _Trainer:
    """The model on its device, its loss, optimizer, LR schedule and gradient scaler."""
    spec = recipe.train
    amp = autocast_dtype(device, spec.amp)
    torch.manual_seed(recipe.seed)
    model = (model if model is not None else build_model(recipe.model, data.info.num_classes)).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    weights = (
        median_frequency_weights(data.train, data.info.num_classes).to(device)
        if spec.class_weights == "median_frequency"
        else None
    )
    criterion = make_loss(spec, weights)
    loss_fn = loss(criterion, device, amp) if loss is not None else _task_loss(criterion)
    batches = _batches_per_rank(recipe, data, ddp)
    optimizer = make_optimizer(model, spec)
    scheduler = make_scheduler(optimizer, spec, batches, clock.budget_used)
    scaler = torch.amp.GradScaler("cuda", enabled=amp is torch.float16)
    ema = weight_ema(model, spec.ema_decay) if spec.ema_decay else None
    return _Trainer(
        recipe, model, model, optimizer, scheduler, scaler, loss_fn, device, ddp, amp, preprocessing(recipe.model), ema
    )


def weight_ema(model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of ``model``'s parameters and buffers (BatchNorm statistics
    included, so the average is evaluated with statistics that match its weights).

    The decay warms up as min(decay, (1 + n) / (10 + n)) over the first updates n, as timm's
    ``ModelEma`` does: early on the average follows the fast-moving weights instead of
    remembering the initialisation for thousands of steps.
    """

    def average(averaged: torch.Tensor, current: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        n = float(updates)
        d = min(decay, (1 + n) / (10 + n))
        return averaged * d + current * (1 - d)

    return torch.optim.swa_utils.AveragedModel(model, avg_fn=average, use_buffers=True)


def _epoch(trainer: _Trainer, data: _Data, epoch: int, clock: Clock, show: bool) -> tuple[dict, dict]:
    """Train one epoch, validate; return its record and the validation metrics."""
    recipe = trainer.recipe
    frozen = frozen_stage_count(recipe.train, epoch)
    _freeze_stages(trainer.model, recipe.train.backbone_stages, frozen)
    torch.manual_seed(recipe.seed * 100003 + epoch)
    loader = _loader(data.dataset, recipe.train, trainer.ddp, recipe.seed, epoch)
    t0 = time.monotonic()
    loss_sum, seen = _train_epoch(trainer, loader, epoch, show)
    train_s = time.monotonic() - t0
    summary = _validate(trainer, data)
    record = {
        "epoch": epoch + 1,
        "loss": loss_sum / max(seen, 1),
        "images": seen * trainer.ddp.world,
        "lr": trainer.optimizer.param_groups[-1]["lr"],
        "images_per_s": seen * trainer.ddp.world / max(train_s, 1e-9),
        "val_miou": summary["miou"] or 0.0,
        "val_pixel_accuracy": summary["pixel_accuracy"],
        "backbone_frozen": frozen == recipe.train.backbone_stages,
        "frozen_stages": frozen,
        "elapsed_s": clock.elapsed(),
    }
    return record, summary


def _save(out_dir: Path, meta: dict, trainer: _Trainer, state: TrainState, improved: bool, summary: dict) -> None:
    """last.pt every epoch (resumable), best.pt when improved (deployable: no optimizer state)."""
    record = state.history[-1]
    precision = str(trainer.amp or torch.float32)
    weights = trainer.deployed.state_dict()
    if improved:
        save_atomic(
            {**meta, "model": weights, "epoch": record["epoch"], "val_metrics": summary, "precision": precision},
            out_dir / "best.pt",
        )
    save_atomic({**meta, **_train_state(trainer, state), "precision": precision}, out_dir / "last.pt")
    write_text_atomic(out_dir / "history.json", json.dumps(state.history, indent=2))
    log.info(
        "epoch %d/%d: loss %.4f  lr %.2e  %.1f img/s  val mIoU %.2f%s",
        record["epoch"],
        trainer.recipe.train.epochs,
        record["loss"],
        record["lr"],
        record["images_per_s"],
        record["val_miou"],
        " (best)" if improved else "",
    )


def _should_stop(recipe: Recipe, state: TrainState, clock: Clock) -> bool:
    patience = recipe.train.early_stopping_patience
    if patience and state.stale >= patience:
        return True
    return clock.budget_min is not None and clock.used() >= 1.0


def _validate(trainer: _Trainer, data: _Data) -> dict:
    """Val metrics; with several processes each scores its shard and the matrices are summed."""
    ddp, pre = trainer.ddp, trainer.pre
    cm, _ = evaluate_samples(
        trainer.deployed,
        data.val,
        class_names=data.info.class_names,
        mean=pre.mean,
        std=pre.std,
        input_size=trainer.recipe.data.image_size,
        device=trainer.device,
        indices=range(ddp.rank, len(data.val), ddp.world),
    )
    if ddp.world > 1:
        summed = torch.from_numpy(cm)
        dist.all_reduce(summed)
        cm = summed.numpy()
    return summarize(cm, data.info.class_names)


def _loader(dataset, spec, ddp: _Dist, seed: int, epoch: int):
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

    if ddp.world > 1:
        sampler = DistributedSampler(
            dataset, num_replicas=ddp.world, rank=ddp.rank, shuffle=True, seed=seed, drop_last=True
        )
        sampler.set_epoch(epoch)
    else:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
    return DataLoader(
        dataset,
        batch_size=spec.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=spec.workers,
        generator=torch.Generator().manual_seed(seed + epoch),
        persistent_workers=False,
    )


def _train_epoch(trainer: _Trainer, loader, epoch: int, show: bool) -> tuple[float, int]:
    from edgeseg.console import progress

    t = trainer
    t.net.train()
    loss_sum, seen = 0.0, 0
    t0 = time.monotonic()
    detail = "loss {task.fields[loss]:.3f} lr {task.fields[lr]:.2e} {task.fields[ips]:.1f} img/s"
    epochs = t.recipe.train.epochs
    with progress(
        f"epoch {epoch + 1}/{epochs}", len(loader), detail=detail, enabled=show, loss=0.0, lr=0.0, ips=0.0
    ) as advance:
        for images, masks in loader:
            loss = _step(t, images, masks)
            loss_sum += float(loss.detach()) * len(images)
            seen += len(images)
            advance(
                loss=loss_sum / seen, lr=t.optimizer.param_groups[-1]["lr"], ips=seen / max(time.monotonic() - t0, 1e-9)
            )
    return loss_sum, seen


def _step(t: _Trainer, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """One optimizer step on a batch; returns its loss."""
    x = normalize(images.to(t.device, non_blocking=True), t.pre.mean, t.pre.std)
    if t.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    target = masks.to(t.device, non_blocking=True).long()
    with torch.autocast(t.device.type, dtype=t.amp or torch.float32, enabled=t.amp is not None):
        logits = t.net(x)
    loss = t.loss(x, logits, target)
    t.optimizer.zero_grad(set_to_none=True)
    t.scaler.scale(loss).backward()
    t.scaler.step(t.optimizer)
    t.scaler.update()
    t.scheduler.step()
    if t.ema is not None:
        t.ema.update_parameters(t.model)
    return loss


def _task_loss(criterion) -> LossFn:
    def loss(x, logits, target):
        return criterion(logits.float(), target)

    return loss


def _freeze_stages(model, stages: int, frozen: int) -> None:
    """The first ``frozen`` of the backbone's ``stages`` stop training; the rest train."""
    for i, stage in enumerate(backbone_stages(model, stages)):
        for _, p in stage:
            p.requires_grad_(i >= frozen)


def _train_state(trainer: _Trainer, state: TrainState) -> dict:
    return {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "rng": torch.get_rng_state(),
        **({"ema": trainer.ema.state_dict()} if trainer.ema is not None else {}),
        **asdict(state),
    }


def _restore(path: Path, trainer: _Trainer) -> TrainState:
    data = read_checkpoint(path)
    if data["recipe"] != trainer.recipe.model_dump(mode="json"):
        raise CheckpointError(
            f"{path}: was written by a different recipe; resume with the same recipe or start a new run"
        )
    trainer.model.load_state_dict(data["model"])
    trainer.optimizer.load_state_dict(data["optimizer"])
    trainer.scheduler.load_state_dict(data["scheduler"])
    trainer.scaler.load_state_dict(data["scaler"])
    if trainer.ema is not None:
        trainer.ema.load_state_dict(data["ema"])
    torch.set_rng_state(data["rng"])
    return TrainState(**{k: data[k] for k in ("epoch", "best_miou", "history", "stale", "elapsed_s")})
