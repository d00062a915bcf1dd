"""Adapt to the field without labels: self-training on ``data.unlabeled`` (the ``adapt`` stage).

Each round, the teacher (the fine-tuned model in round 1, then the previous round's student:
its EMA when ``adapt.ema_decay`` is set, the mean-teacher recipe) labels every unlabelled image;
a pixel keeps its pseudo-label when the teacher's confidence reaches its class's threshold,
else it is ignored. The threshold is per class, as in class-balanced self-training (Zou et al.,
ECCV 2018): min(``confidence``, the ``class_quantile`` quantile of the confidences of the pixels
predicted as that class). A rare class the model is less sure of still keeps its most confident
pixels, instead of being drowned by the confident road and sky. The student starts from the
teacher and trains for ``adapt.epochs`` on the labelled training images plus the pseudo-labelled
ones, under ``adapt.augment`` (strong: the student must match the teacher through harder views).

Resumable like training: each round's pseudo-labels are saved before its student trains
(``round-<n>/pseudo.pt``), the student resumes from its last epoch, and a finished round
(``round-<n>/done.json``) is not run again.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import torch

from edgeseg.data.samples import IGNORE, Samples, read_image
from edgeseg.errors import DataError
from edgeseg.recipe import Recipe

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# torch.quantile refuses inputs over 16M elements: larger classes are subsampled evenly
QUANTILE_SAMPLE = 1 << 22
# A rise of the class shift over the rounds beyond this is called drift: on CamVid dusk it moved
# 0.03 between rounds on an adaptation that helped, on the noise shift that failed it rose 0.06.
DRIFT_TOLERANCE = 0.02
log = logging.getLogger("edgeseg.adapt")


def load_unlabeled(folder: str) -> Samples:
    """Every image under ``folder`` (name order) as uint8 [3,H,W] tensors, with no masks."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: data.unlabeled is not a directory")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not paths:
        raise DataError(f"{root}: data.unlabeled holds no images ({', '.join(IMAGE_SUFFIXES)})")
    images = [torch.from_numpy(read_image(p)).permute(2, 0, 1).contiguous() for p in paths]
    return Samples(images, [None] * len(images), [str(p.relative_to(root)) for p in paths])


def class_thresholds(confidence: torch.Tensor, labels: torch.Tensor, num_classes: int, cap: float, quantile: float):
    """Per class: min(cap, the ``quantile`` of the confidences of the pixels predicted as it)."""
    out = torch.full((num_classes,), cap)
    for c in range(num_classes):
        values = confidence[labels == c]
        if values.numel() == 0:
            continue
        step = max(1, values.numel() // QUANTILE_SAMPLE)
        out[c] = min(cap, float(torch.quantile(values[::step].float(), quantile)))
    return out


@torch.no_grad()
def pseudo_label(teacher, images: list[torch.Tensor], recipe: Recipe, num_classes: int) -> tuple[list, dict]:
    """The teacher's pseudo-label masks (uint8, IGNORE below the class threshold) and statistics."""
    from edgeseg.eval.evaluate import predict_logits
    from edgeseg.models.builders import preprocessing

    pre, spec = preprocessing(recipe.model), recipe.adapt
    teacher.eval()
    predictions = []
    for image in images:
        probs = predict_logits(teacher, image[None], pre.mean, pre.std, recipe.data.image_size).softmax(1)[0]
        confidence, labels = probs.max(0)
        predictions.append((confidence, labels))
    all_conf = torch.cat([c.flatten() for c, _ in predictions])
    all_labels = torch.cat([lab.flatten() for _, lab in predictions])
    thresholds = class_thresholds(all_conf, all_labels, num_classes, spec.confidence, spec.class_quantile)
    masks = []
    for confidence, labels in predictions:
        keep = confidence >= thresholds[labels]
        masks.append(torch.where(keep, labels, torch.full_like(labels, IGNORE)).to(torch.uint8))
    kept = torch.cat([m.flatten() for m in masks])
    stats = {
        "thresholds": [round(float(t), 4) for t in thresholds],
        "kept_fraction": round(float((kept != IGNORE).float().mean()), 4),
        "kept_per_class": [int((kept == c).sum()) for c in range(num_classes)],
        "predicted_per_class": [int((all_labels == c).sum()) for c in range(num_classes)],
    }
    return masks, stats


def repeats_for_share(labelled: int, unlabelled: int, share: float | None) -> int:
    """How many times each unlabelled image appears in a student epoch so that at least ``share``
    of the epoch is pseudo-labelled: the smallest k with k*u / (labelled + k*u) >= share."""
    if share is None or unlabelled == 0:
        return 1
    return max(1, math.ceil(share * labelled / ((1 - share) * unlabelled) - 1e-9))


def class_shift(predicted: list[int], labelled: list[float]) -> float:
    """Total variation distance between the teacher's class shares on the unlabelled images and
    the labelled training pixels' (0: the same mix, 1: disjoint). A label-free sign of drift: on
    CamVid it fell over the rounds for dusk (0.19, 0.16) and rose for a noise shift whose teacher
    was wrong (0.36, 0.42; benchmarks/README.md, section 14c)."""
    shares, total = [c / max(sum(predicted), 1) for c in predicted], sum(labelled) or 1
    return round(0.5 * sum(abs(p - q / total) for p, q in zip(shares, labelled, strict=True)), 4)


def student_recipe(recipe: Recipe) -> Recipe:
    """The recipe a round's student trains with: adapt's epochs, LR, EMA and augmentation."""
    spec = recipe.adapt
    augment = spec.augment.model_copy(update={"crop": spec.augment.crop or recipe.data.augment.crop})
    train = recipe.train.follow_up(spec.epochs, spec.lr, time_budget_min=None, ema_decay=spec.ema_decay)
    data = recipe.data.model_copy(update={"augment": augment})
    return recipe.model_copy(update={"train": train, "data": data})


def _labels(recipe: Recipe, teacher_path: Path, target: Samples, out: Path, num_classes: int, keep: bool):
    """The teacher's pseudo-labels of ``target`` (None unless ``keep``) and their statistics, saved
    in ``out`` first so that a resumed build labels nothing twice."""
    from edgeseg.models.checkpoint import load_model

    saved_file = out / ("pseudo.pt" if keep else "labels.json")
    if saved_file.is_file():
        if not keep:
            return None, json.loads(saved_file.read_text())
        saved = torch.load(saved_file, weights_only=True)
        return saved["masks"], json.loads(saved["stats"])
    out.mkdir(parents=True, exist_ok=True)
    masks, stats = pseudo_label(load_model(teacher_path).model, target.images, recipe, num_classes)
    if keep:
        torch.save({"masks": masks, "stats": json.dumps(stats)}, saved_file)
    else:
        saved_file.write_text(json.dumps(stats, indent=2))
    return (masks if keep else None), stats


def _student(recipe: Recipe, teacher_path: Path, pseudo: tuple[Samples, list], out: Path, labelled: int) -> dict:
    """A round's student: the teacher's weights trained on the labelled images plus the
    pseudo-labelled ones (``pseudo``: the target images and their masks), repeated to
    ``adapt.unlabeled_share`` of each epoch beside ``labelled`` images."""
    from edgeseg.models.checkpoint import load_model, read_checkpoint
    from edgeseg.train.loop import fit

    target, masks = pseudo
    repeats = repeats_for_share(labelled, len(target), recipe.adapt.unlabeled_share)
    names = [f"unlabeled/{n}" for n in target.names]
    extra = Samples(target.images * repeats, masks * repeats, names * repeats)
    student = load_model(teacher_path).model.train()
    result = fit(student_recipe(recipe), out, resume=True, model=student, extra_train=extra, keep="last")
    final = read_checkpoint(result.best)
    return {"repeats": repeats, "val_miou": final["val_metrics"]["miou"], "epochs": len(result.history)}


def self_train(recipe: Recipe, checkpoint: Path, out: Path, labelled: int, class_mix: list[float]) -> dict:
    """Every round of ``adapt`` from the fine-tuned ``checkpoint``; ``out/adapt.json`` holds each
    round's pseudo-label statistics, class shift and val mIoU, then the last student's class shift.
    ``out/best.pt`` is the last round's student; with ``adapt.stop_on_drift``, the last model
    before the class mix drifted (``shipped`` says which), and no round trains after a drift.
    ``labelled``: how many labelled images the students fit on beside the pseudo-labelled ones
    (it sets the repeats for ``adapt.unlabeled_share``); ``class_mix``: their class shares."""
    from edgeseg.data import dataset_info
    from edgeseg.models.checkpoint import read_checkpoint

    target = load_unlabeled(recipe.data.unlabeled)
    num_classes = dataset_info(recipe.data).num_classes
    models, shifts, rounds = [checkpoint], [], []
    for number in range(1, recipe.adapt.rounds + 2):  # the extra pass labels with the last student
        last_pass = number > recipe.adapt.rounds
        folder = out / ("last-student" if last_pass else f"round-{number}")
        masks, stats = _labels(recipe, models[-1], target, folder, num_classes, keep=not last_pass)
        shifts.append(class_shift(stats["predicted_per_class"], class_mix))
        if last_pass or (recipe.adapt.stop_on_drift and drifted(shifts)):
            break
        done = folder / "done.json"
        if not done.is_file():
            done.write_text(json.dumps(_student(recipe, models[-1], (target, masks), folder, labelled), indent=2))
        rounds.append({"round": number, **stats, **json.loads(done.read_text()), "class_shift": shifts[-1]})
        models.append(folder / "best.pt")
    shipped = _shipped(shifts, recipe.adapt.stop_on_drift)
    _warn_on_drift(shifts, shipped)
    shutil.copyfile(models[shipped], out / "best.pt")
    report = {
        "images": len(target),
        "unlabeled": recipe.data.unlabeled,
        "rounds": rounds,
        "class_shifts": shifts,  # the fine-tuned model's, each student's (a drifted one's last)
        "shipped": f"round-{shipped}" if shipped else "fine-tuned",
        "shipped_val_miou": read_checkpoint(out / "best.pt")["val_metrics"]["miou"],
    }
    (out / "adapt.json").write_text(json.dumps(report, indent=2))
    return report


def drifted(shifts: list[float]) -> bool:
    """Whether the last student's class shift is more than DRIFT_TOLERANCE above the fine-tuned
    model's (``shifts[0]``, the reference, never drifted)."""
    return len(shifts) > 1 and shifts[-1] > shifts[0] + DRIFT_TOLERANCE


def _shipped(shifts: list[float], stop_on_drift: bool) -> int:
    """Which model ships (0: the fine-tuned one, n: round n's student): the last one, or with
    ``stop_on_drift`` the last before the first whose class mix drifted."""
    first_drift = next((i for i in range(1, len(shifts)) if drifted(shifts[: i + 1])), None)
    return len(shifts) - 1 if first_drift is None or not stop_on_drift else first_drift - 1


def _warn_on_drift(shifts: list[float], shipped: int) -> None:
    """Say so when the models' class mix moved away from the labelled one over the rounds: the
    source-domain mIoU does not show a student learning its teacher's mistakes, this can."""
    if not drifted(shifts):
        return
    if shipped == len(shifts) - 1:
        outcome = "the last student ships (adapt.stop_on_drift: true ships the model before the drift)"
    else:
        outcome = f"adapt.stop_on_drift: shipping {f'round {shipped}' if shipped else 'the fine-tuned model'}"
    log.warning(
        "adapt: the class mix the models predict on the unlabelled images drifted from the labelled "
        "data's (class shift %s); a teacher that is wrong on these images teaches its mistakes; %s",
        " -> ".join(f"{s:.2f}" for s in shifts),
        outcome,
    )
