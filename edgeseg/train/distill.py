"""Knowledge distillation: the student learns the task and the teacher's softened pixel scores.

loss = (1 - w) * task(student, labels) + w * T^2 * KL(softmax(teacher / T) || softmax(student / T))

The KL is averaged over the pixels that have a label (void pixels carry no task signal, and the
teacher's guess there is what the student should not imitate either); the T^2 factor keeps the
soft term's gradients at the same scale for any temperature (Hinton et al., 2015).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.data.samples import IGNORE


def soft_kl(student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-pixel KL(teacher || student) at ``temperature``, mean over labelled pixels, times T^2."""
    log_p_student = F.log_softmax(student / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=1)
    per_pixel = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1)
    valid = (target != IGNORE).to(per_pixel.dtype)
    return (per_pixel * valid).sum() / valid.sum().clamp(min=1) * temperature**2


def distillation(teacher: nn.Module, spec) -> Callable:
    """A ``fit`` loss hook: the task criterion plus distillation from ``teacher`` per ``spec``
    (a ``DistillSpec``); the teacher moves to the training device in the training layout."""

    def hook(criterion: nn.Module, device: torch.device, autocast: torch.dtype | None) -> Distillation:
        layout = torch.channels_last if device.type == "cpu" else torch.preserve_format
        return Distillation(
            criterion, teacher.to(device, memory_format=layout), spec.temperature, spec.weight, autocast
        )

    return hook


class Distillation:
    """A training loss ``(x, student_logits, target) -> loss`` with a frozen teacher inside."""

    def __init__(
        self, task: nn.Module, teacher: nn.Module, temperature: float, weight: float, autocast: torch.dtype | None
    ):
        self.task, self.teacher, self.temperature, self.weight, self.autocast = (
            task,
            teacher.eval(),
            temperature,
            weight,
            autocast,
        )
        for p in teacher.parameters():
            p.requires_grad_(False)

    def __call__(self, x: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with (
            torch.no_grad(),
            torch.autocast(x.device.type, dtype=self.autocast or torch.float32, enabled=self.autocast is not None),
        ):
            teacher = self.teacher(x)
        task = self.task(logits.float(), target)
        if self.weight == 0:
            return task
        return (1 - self.weight) * task + self.weight * soft_kl(
            logits.float(), teacher.float(), target, self.temperature
        )
