"""Compression: the fine-tuned checkpoint in, a compressed checkpoint and a report out.

``STEPS`` maps a recipe's ``compress.steps[].kind`` to a function. Steps run in recipe order
(e.g. prune -> distil -> QAT), each taking the model the previous one left. The result is an
edgeseg checkpoint whose ``compression`` entry lists, in order, how to rebuild the model from
the recipe's architecture (a channel plan for pruning, NNCF's JSON config for INT8; never a
pickle), so ``load_model``, ``eval`` and the exporters take it like any other checkpoint.
"""

from __future__ import annotations

import copy
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edgeseg._io import write_text_atomic
from edgeseg.errors import RecipeError
from edgeseg.models.builders import model_facts
from edgeseg.models.replay import channel_plan, int8_facts
from edgeseg.recipe import PruneStep, QuantizeStep, Recipe, SparsityStep
from edgeseg.registry import lookup

log = logging.getLogger(__name__)


@dataclass
class CompressJob:
    """The state a step reads and replaces: the current model and the data to judge it by."""

    recipe: Recipe
    loaded: object  # LoadedCheckpoint of the fine-tuned model
    model: torch.nn.Module
    input_size: tuple[int, int]
    train: object  # Samples
    val: object  # Samples
    out: Path
    transforms: list[dict] = field(default_factory=list)  # the checkpoint's "compression" entry
    sparse: bool = False  # a sparsity step ran: later fine-tuning keeps its zeros
    index: int = 0  # of the running step in compress.steps (for messages)

    @property
    def example(self) -> torch.Tensor:
        return torch.zeros(1, 3, *self.input_size)

    def evaluate(self, model, samples, indices=None) -> dict:
        from edgeseg.eval import evaluate_samples

        _, summary = evaluate_samples(
            model,
            samples,
            class_names=self.loaded.class_names,
            mean=self.loaded.mean,
            std=self.loaded.std,
            input_size=self.recipe.data.image_size,
            indices=indices,
        )
        return summary

    def pick(self, count: int, salt: int) -> list[int]:
        """A seeded subset of training-image indices (never validation: no tuning on val)."""
        order = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(self.recipe.seed * 7919 + salt))
        return order[: min(count, len(self.train))].tolist()

    def calibration(self, count: int) -> list[torch.Tensor]:
        return self._inputs(self.pick(count, 1))

    def _inputs(self, indices: list[int]) -> list[torch.Tensor]:
        from edgeseg.data.transforms import normalize, resize_images

        images = resize_images([self.train.images[i] for i in indices], self.input_size)
        return [normalize(img[None], self.loaded.mean, self.loaded.std) for img in images]

    def training_batches(self, count: int, batch_size: int = 8) -> list[torch.Tensor]:
        """Normalised training images at the input size, in batches (BatchNorm re-estimation)."""
        images = self.calibration(count)
        return [torch.cat(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]

    def labelled_batches(self, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Training images with their masks at the input size (Taylor importance's gradients)."""
        import torch.nn.functional as F

        picked = self.pick(count, 3)
        masks = [
            F.interpolate(self.train.masks[i][None, None].float(), size=self.input_size, mode="nearest")[0, 0].long()
            for i in picked
        ]
        return [(x, m[None]) for x, m in zip(self._inputs(picked), masks, strict=True)]

    def fine_tune(
        self,
        step,
        model: torch.nn.Module,
        workdir: Path,
        facts: list[dict],
        *,
        teacher: torch.nn.Module,
        budget_min=None,
    ) -> tuple[torch.nn.Module, list[dict]]:
        """The recipe's training loop on ``model`` for the step's epochs at its LR, no warm-up,
        distilling from ``teacher`` when ``step.distill`` is enabled; the best epoch is kept.

        ``budget_min`` overrides the step's time budget (a prune round gets its share).
        """
        from edgeseg.compress.sparsity import keep_zeros
        from edgeseg.models.checkpoint import read_checkpoint
        from edgeseg.train.distill import distillation
        from edgeseg.train.loop import fit

        budget = step.time_budget_min if budget_min is None else budget_min
        # a short fine-tune of a pruned or quantized model keeps its own weights: no EMA
        train = self.recipe.train.follow_up(step.epochs, step.lr, budget, ema_decay=None)
        handles = keep_zeros(model) if self.sparse else []
        try:
            loss = distillation(teacher, step.distill) if step.distill.enabled else None
            result = fit(
                self.recipe.model_copy(update={"train": train}),
                workdir,
                resume=True,
                model=model,
                facts={"compression": facts},
                loss=loss,
            )
        finally:
            for handle in handles:
                handle.remove()
        model.load_state_dict(read_checkpoint(result.best)["model"])  # the best epoch, not the last
        return model.eval(), result.history


def _quantize(job: CompressJob, step: QuantizeStep, workdir: Path) -> dict:
    """PTQ with NNCF (plus the float fallback when the recipe sets a budget), then QAT if asked.

    The calibrated model is checkpointed (``start.pt``, its report ``start.json``) and the step
    continues from that file, so a killed QAT resumes without calibrating again.
    """
    from edgeseg.models.checkpoint import load_model

    start = workdir / "start.pt"
    if not start.is_file():
        quantized, report = _calibrate(job, step)
        _save(job, start, model=quantized, transforms=report.pop("transforms"))
        write_text_atomic(workdir / "start.json", json.dumps(report, indent=2))
    loaded = load_model(start)
    quantized, facts = loaded.model, loaded.raw["compression"]
    report = json.loads((workdir / "start.json").read_text())
    if step.kind == "qat":
        quantized, history = job.fine_tune(step, quantized, workdir, facts, teacher=job.model)
        report["qat"] = {
            "epochs": step.epochs,
            "lr": step.lr,
            "distill": step.distill.model_dump() if step.distill.enabled else None,
            "history": history,
        }
    job.model, job.transforms = quantized.eval(), facts
    return report


def _calibrate(job: CompressJob, step: QuantizeStep) -> tuple[torch.nn.Module, dict]:
    """NNCF PTQ on training images; with ``max_miou_drop``, the worst groups back to float."""
    from edgeseg.compress.quantize import fall_back_to_float, quantize_ptq, quantized_facts
    from edgeseg.targets import get_target

    target = get_target(step.target)
    quantized = quantize_ptq(
        job.model,
        job.calibration(step.calibration_samples),
        signed_activations=target.name == "cuda",
        seven_bit=target.seven_bit_weights,
        ignored=step.ignored,
    )
    report: dict = {
        "kind": step.kind,
        "target": step.target,
        "weights": target.why,
        "calibration_samples": step.calibration_samples,
    }
    if step.max_miou_drop is not None:
        subset = job.pick(step.sensitivity_images, 2)

        def miou(model) -> float:
            return job.evaluate(model, job.train, subset)["miou"] or 0.0

        report["fallback"] = fall_back_to_float(
            quantized, miou, miou(job.model), step.max_miou_drop, step.max_fallback_groups
        )
        report["fallback"]["judged_on"] = f"{len(subset)} training images"
    kept = report.get("fallback", {}).get("kept_in_float", [])
    report["transforms"] = [*job.transforms, quantized_facts(quantized, target=step.target, fallback=kept)]
    return quantized, report


def _prune(job: CompressJob, step: PruneStep, workdir: Path) -> dict:
    """Structured pruning (one shot or iterative), each round followed by distilled fine-tuning."""
    from edgeseg.compress.prune import count_macs, make_pruner

    protected, args = _pruner_args(job, step)
    teacher = copy.deepcopy(job.model).eval()
    full_macs = count_macs(teacher, job.example)
    ratio = step.ratio if step.ratio is not None else _ratio_for_target(job, step, args)
    model = job.model
    pruner = make_pruner(model, job.example, ratio=ratio, iterative_steps=step.iterations, **args)
    rounds = []
    for k in range(step.iterations):
        model, facts, record = _prune_round(job, step, model, pruner, teacher, full_macs, k, workdir)
        rounds.append(record)
    job.model, job.transforms = model.eval(), facts
    return {
        "kind": "prune",
        "ratio": round(ratio, 4),
        "target_macs": step.target_macs,
        "macs_kept": rounds[-1]["macs_kept"],
        "importance": step.importance,
        "global_pruning": step.global_pruning,
        "round_to": step.round_to,
        "protected": protected,
        "bn_recalibration_images": step.bn_recalibration_images,
        "iterations": step.iterations,
        "fine_tune": {
            "epochs_per_round": step.epochs,
            "lr": step.lr,
            "distill": step.distill.model_dump() if step.distill.enabled else None,
        },
        "rounds": rounds,
    }


def _pruner_args(job: CompressJob, step: PruneStep) -> tuple[list[str], dict]:
    """The modules left alone (classifiers and ``protected``) and the pruner's settings."""
    from edgeseg.compress.prune import protected_layers

    try:
        protected = protected_layers(job.model, len(job.loaded.class_names), step.protected)
    except KeyError as exc:
        raise RecipeError(f"compress.steps[{job.index}].protected: {exc.args[0]}") from None
    args = {"importance": step.importance, "protected": protected, "round_to": step.round_to}
    return protected, {**args, "global_pruning": step.global_pruning}


def _ratio_for_target(job: CompressJob, step: PruneStep, args: dict) -> float:
    """The pruning ratio that keeps ``step.target_macs`` of the MACs (bisected)."""
    from edgeseg.compress.prune import ratio_for_macs

    # Taylor scores need gradients the search's throwaway copies lack: search with L2 (the
    # channel counts it finds are close; the report gives the MACs actually kept).
    search = {**args, "importance": "l2" if step.importance == "taylor" else step.importance}
    ratio, _ = ratio_for_macs(job.model, job.example, step.target_macs, **search)
    return ratio


def _prune_round(job: CompressJob, step: PruneStep, model, pruner, teacher, full_macs: float, k: int, workdir: Path):
    """One pruning round: prune, re-estimate BatchNorm, fine-tune. Returns (model, facts, record)."""
    from edgeseg.compress.prune import count_macs, recalibrate_batchnorm, taylor_gradients

    if step.importance == "taylor":
        taylor_gradients(model, job.labelled_batches(16), torch.nn.CrossEntropyLoss(ignore_index=255))
    pruner.step()
    model.zero_grad(set_to_none=True)
    if step.bn_recalibration_images:
        recalibrate_batchnorm(model, job.training_batches(step.bn_recalibration_images))
    facts = [*job.transforms, {"kind": "pruned", "channels": channel_plan(model, teacher)}]
    record = {
        "round": k + 1,
        "macs_kept": round(count_macs(model, job.example) / full_macs, 4),
        "val_miou_before_fine_tune": job.evaluate(model, job.val)["miou"],
    }
    if step.epochs:
        budget = step.time_budget_min / step.iterations if step.time_budget_min else None
        round_dir = workdir / f"round{k + 1}"
        model, record["history"] = job.fine_tune(step, model, round_dir, facts, teacher=teacher, budget_min=budget)
    log.info("prune round %d/%d: %.1f%% of the MACs kept", k + 1, step.iterations, 100 * record["macs_kept"])
    return model, facts, record


def _sparsify(job: CompressJob, step: SparsityStep, workdir: Path) -> dict:
    """NNCF magnitude masks, fine-tuned with the masks in place, then baked into the weights."""
    from edgeseg.compress.sparsity import NO_SPEEDUP, bake_masks, gzip_mb, sparsify, weight_sparsity

    dense_gzip = gzip_mb(job.model)
    masked = sparsify(copy.deepcopy(job.model), step.ratio, step.scope, job.example)
    if step.epochs:
        # Intermediate checkpoints hold NNCF's mask buffers: training state, not a deployable model.
        facts = [*job.transforms, {"kind": "nncf-sparsity-masks"}]
        masked, _ = job.fine_tune(step, masked, workdir, facts, teacher=job.model)
    job.model = bake_masks(masked).eval()
    job.transforms = [*job.transforms, {"kind": "sparse", "ratio": step.ratio}]
    job.sparse = True
    return {
        "kind": "sparsity",
        "ratio": step.ratio,
        "scope": step.scope,
        "weight_sparsity": round(weight_sparsity(job.model), 4),
        "gzip_mb": {"dense": round(dense_gzip, 3), "sparse": round(gzip_mb(job.model), 3)},
        "speedup": NO_SPEEDUP,
    }


STEPS: dict[str, Callable[[CompressJob, object, Path], dict]] = {
    "prune": _prune,
    "sparsity": _sparsify,
    "ptq": _quantize,
    "qat": _quantize,
}


def _delta(after: dict, before: dict) -> dict:
    return {
        "miou": after["miou"],
        "miou_delta": round((after["miou"] or 0) - (before["miou"] or 0), 4),
        "per_class_iou_delta": {
            name: (
                None
                if iou is None or before["per_class_iou"][name] is None
                else round(iou - before["per_class_iou"][name], 4)
            )
            for name, iou in after["per_class_iou"].items()
        },
    }


def _size_facts(model: torch.nn.Module, quantized: bool) -> dict:
    """The weights as the checkpoint stores them, and as a deployed artifact would (int8 or fp32)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    params = sum(p.numel() for p in model.parameters() if p.dim() > 0)
    return {
        "state_dict_mb": round(len(buffer.getvalue()) / 1e6, 3),
        "deployed_weights_mb": round(params * (1 if quantized else 4) / 1e6, 3),
    }


def _save(job: CompressJob, path: Path, *, model=None, transforms=None, metrics: dict | None = None) -> None:
    """A model (the job's current one by default) as an edgeseg checkpoint: the fine-tuned one's
    facts (no training state), the compression transforms to replay, and its val metrics."""
    from edgeseg.models.checkpoint import save_atomic

    training = ("model", "optimizer", "scheduler", "scaler", "rng", "compression", "val_metrics")
    facts = {k: v for k, v in job.loaded.raw.items() if k not in training}
    model = job.model if model is None else model
    transforms = job.transforms if transforms is None else transforms
    save_atomic({**facts, "model": model.state_dict(), "compression": transforms, "val_metrics": metrics}, path)


def _as_trained(model: torch.nn.Module, step) -> torch.nn.Module:
    """A reloaded model in the memory layout the step's fine-tune left it in (channels-last on the
    CPU), so the next step computes exactly as it would on the model still in memory."""
    trained = getattr(step, "epochs", 0) and step.kind != "ptq"
    return model.to(memory_format=torch.channels_last) if trained and not torch.cuda.is_available() else model


def _run_step(job: CompressJob, step, workdir: Path, fp32: dict, facts: dict) -> tuple[dict, dict]:
    """One step, unless a killed build finished it (``done.pt``): returns its report entry and
    val metrics. The next step always starts from ``done.pt``, so a resumed build and an
    uninterrupted one hand it the same model."""
    from edgeseg.models.checkpoint import load_model

    done = workdir / "done.pt"
    if not done.is_file():
        workdir.mkdir(parents=True, exist_ok=True)
        entry = lookup(STEPS, step.kind, "compression step")(job, step, workdir)
        metrics = job.evaluate(job.model, job.val)
        quantizes = step.kind in ("qat", "ptq")
        if not quantizes:  # quantizers change neither MACs nor parameters
            facts = model_facts(job.model, job.input_size)
        entry.update({**facts, **_size_facts(job.model, quantizes), **_delta(metrics, fp32)})
        _save(job, done, metrics=metrics)
        write_text_atomic(workdir / "done.json", json.dumps(entry, indent=2))
    loaded = load_model(done)
    job.model, job.transforms = _as_trained(loaded.model, step), loaded.raw["compression"]
    job.sparse = job.sparse or step.kind == "sparsity"
    return json.loads((workdir / "done.json").read_text()), loaded.raw["val_metrics"]


def compress_checkpoint(recipe: Recipe, checkpoint: Path, out: Path) -> dict:
    """Run ``recipe.compress.steps`` on ``checkpoint``; write ``out/model.pt`` and ``report.json``.

    When the last step quantizes after float steps (e.g. prune -> qat), the float model before
    quantization is also written, as ``out/float.pt``: the fp32/fp16 artifacts come from it.

    Returns:
        The report: fp32 facts and val metrics, then per step its figures and the deltas.
    """
    from edgeseg.data import load_split, load_training
    from edgeseg.data.splits import selection_split
    from edgeseg.models.checkpoint import load_model

    loaded = load_model(checkpoint)
    size = tuple(recipe.data.image_size or loaded.input_size)
    train = load_training(recipe.data, recipe.seed)
    val = load_split(recipe.data, selection_split(recipe.data), recipe.seed)
    job = CompressJob(recipe, loaded, loaded.model, size, train, val, out)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = job.evaluate(loaded.model, job.val)
    metrics, facts = fp32, model_facts(loaded.model, size)
    report = {"fp32": {**facts, **_size_facts(loaded.model, False), "val_miou": fp32["miou"]}, "steps": []}
    report["fp32"]["per_class_iou"] = fp32["per_class_iou"]
    for index, step in enumerate(recipe.compress.steps):
        if step.kind in ("qat", "ptq") and job.transforms:  # the float model the quantizers go into
            _save(job, out / "float.pt", metrics=metrics)
        job.index = index
        entry, metrics = _run_step(job, step, out / "steps" / f"{index + 1}-{step.kind}", fp32, facts)
        facts = {"params_m": entry["params_m"], "gmacs": entry["gmacs"]}
        report["steps"].append(entry)
        log.info(
            "compress %s: val mIoU %.2f (%+.2f vs fp32), %.3f GMACs",
            step.kind,
            metrics["miou"],
            entry["miou_delta"],
            facts["gmacs"],
        )
    _save(job, out / "model.pt", metrics=metrics)
    report["checkpoint_mb"] = round((out / "model.pt").stat().st_size / 1e6, 3)
    float_model = (
        "float.pt" if (out / "float.pt").is_file() else ("model.pt" if not int8_facts(job.transforms) else None)
    )
    report["checkpoints"] = {"final": "model.pt", "float": float_model}
    write_text_atomic(out / "report.json", json.dumps(report, indent=2))
    return report
