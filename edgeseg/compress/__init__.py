"""Compression: the fine-tuned checkpoint in, a compressed checkpoint and a report out.

``STEPS`` maps a recipe's ``compress.steps[].kind`` to a function. Steps run in recipe order; the
result is an edgeseg checkpoint whose ``compression`` entry says how to rebuild the model (for
INT8: NNCF's JSON config, never a pickle), so ``load_model``, ``eval`` and the exporters take it
like any other checkpoint.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from edgeseg._io import write_text_atomic
from edgeseg.recipe import QuantizeStep, Recipe
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
    facts: dict | None = None  # the compressed checkpoint's "compression" entry

    def evaluate(self, model, samples, indices=None) -> dict:
        from edgeseg.eval import evaluate_samples

        _, summary = evaluate_samples(
            model, samples, class_names=self.loaded.class_names, mean=self.loaded.mean, std=self.loaded.std,
            input_size=self.recipe.data.image_size, indices=indices,
        )
        return summary

    def pick(self, count: int, salt: int) -> list[int]:
        """A seeded subset of training-image indices (never validation: no tuning on val)."""
        order = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(self.recipe.seed * 7919 + salt))
        return order[: min(count, len(self.train))].tolist()

    def calibration(self, count: int) -> list[torch.Tensor]:
        from edgeseg.data.transforms import normalize, resize_images

        images = resize_images([self.train.images[i] for i in self.pick(count, 1)], self.input_size)
        return [normalize(img[None], self.loaded.mean, self.loaded.std) for img in images]


def _quantize(job: CompressJob, step: QuantizeStep) -> dict:
    """PTQ with NNCF (plus the float fallback when the recipe sets a budget), then QAT if asked."""
    from edgeseg.compress.quantize import fall_back_to_float, quantize_ptq, quantized_facts

    quantized = quantize_ptq(job.model, job.calibration(step.calibration_samples), signed_activations=step.target == "tensorrt", ignored=step.ignored)
    report: dict = {"kind": step.kind, "target": step.target, "calibration_samples": step.calibration_samples}
    if step.max_miou_drop is not None:
        subset = job.pick(step.sensitivity_images, 2)

        def miou(model) -> float:
            return job.evaluate(model, job.train, subset)["miou"] or 0.0

        report["fallback"] = fall_back_to_float(quantized, miou, miou(job.model), step.max_miou_drop, step.max_fallback_groups)
        report["fallback"]["judged_on"] = f"{len(subset)} training images"
    facts = quantized_facts(quantized, target=step.target, fallback=report.get("fallback", {}).get("kept_in_float", []))
    if step.kind == "qat":
        quantized = _train_quantized(job, step, quantized, facts)
        report["qat"] = {"epochs": step.epochs, "lr": step.lr}
    job.model, job.facts = quantized.eval(), facts
    return report


def _train_quantized(job: CompressJob, step: QuantizeStep, quantized: torch.nn.Module, facts: dict) -> torch.nn.Module:
    """Quantization-aware fine-tuning: the recipe's training loop at a low LR, no warm-up."""
    from edgeseg.train.checkpoint import read_checkpoint
    from edgeseg.train.loop import fit

    train = job.recipe.train.model_copy(update={
        "epochs": step.epochs, "lr": step.lr, "warmup_epochs": 0.0, "freeze_backbone_epochs": 0,
        "time_budget_min": step.time_budget_min, "early_stopping_patience": None,
    })
    result = fit(job.recipe.model_copy(update={"train": train}), job.out / "qat", resume=True, model=quantized, extra_facts={"compression": facts})
    quantized.load_state_dict(read_checkpoint(result.best)["model"])  # the best epoch, not the last
    return quantized


STEPS: dict[str, Callable[[CompressJob, object], dict]] = {"ptq": _quantize, "qat": _quantize}


def model_facts(model: torch.nn.Module, input_size: tuple[int, int]) -> dict:
    """Parameters and multiply-accumulates at the input size (torch's FLOP counter / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, *input_size))
    return {"params_m": round(params / 1e6, 4), "gmacs": round(counter.get_total_flops() / 2e9, 4)}


def _delta(after: dict, before: dict) -> dict:
    return {
        "miou": after["miou"],
        "miou_delta": round((after["miou"] or 0) - (before["miou"] or 0), 4),
        "per_class_iou_delta": {
            name: (None if iou is None or before["per_class_iou"][name] is None else round(iou - before["per_class_iou"][name], 4))
            for name, iou in after["per_class_iou"].items()
        },
    }


def compress_checkpoint(recipe: Recipe, checkpoint: Path, out: Path) -> dict:
    """Run ``recipe.compress.steps`` on ``checkpoint``; write ``out/model.pt`` and ``report.json``.

    Returns:
        The report: fp32 facts and val metrics, then per step its figures and the deltas.
    """
    from edgeseg.data import load_split
    from edgeseg.train.checkpoint import load_model, save_atomic

    loaded = load_model(checkpoint)
    size = tuple(recipe.data.image_size or loaded.input_size)
    job = CompressJob(recipe, loaded, loaded.model, size, load_split(recipe.data, "train", recipe.seed), load_split(recipe.data, "val", recipe.seed), out)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = job.evaluate(loaded.model, job.val)
    report = {"fp32": {**model_facts(loaded.model, size), "val_miou": fp32["miou"], "per_class_iou": fp32["per_class_iou"]}, "steps": []}
    for step in recipe.compress.steps:
        entry = lookup(STEPS, step.kind, "compression step")(job, step)
        metrics = job.evaluate(job.model, job.val)
        entry.update(_delta(metrics, fp32))
        report["steps"].append(entry)
        log.info("compress %s: val mIoU %.2f (%+.2f against fp32)", step.kind, metrics["miou"], entry["miou_delta"])
    state = {k: v for k, v in loaded.raw.items() if k not in ("model", "optimizer", "scheduler", "scaler", "rng")}
    save_atomic({**state, "model": job.model.state_dict(), "compression": job.facts, "val_metrics": metrics if recipe.compress.steps else fp32}, out / "model.pt")
    report["checkpoint_mb"] = round((out / "model.pt").stat().st_size / 1e6, 3)
    write_text_atomic(out / "report.json", json.dumps(report, indent=2))
    return report
