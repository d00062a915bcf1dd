"""Joint image/mask transforms (torchvision.transforms.v2) and the in-memory torch Dataset.

Transforms run on uint8 tensors (cheap); conversion to float and normalisation happen once
per batch in the training loop, where they vectorise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2

from edgeseg.data.samples import IGNORE, Samples
from edgeseg.recipe import AugmentSpec


def train_transform(augment: AugmentSpec, size: tuple[int, int], native: tuple[int, int] | None):
    """Random scale, crop to ``size`` (padding with ignore), flip, colour jitter and blur."""
    base = min(native or size)
    steps: list = [
        v2.RandomResize(
            min_size=max(8, int(base * augment.scale[0])), max_size=max(9, int(base * augment.scale[1]) + 1)
        ),
        v2.RandomCrop(size, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE}),
    ]
    if augment.hflip:
        steps.append(v2.RandomHorizontalFlip())
    if augment.color_jitter > 0:
        j = augment.color_jitter
        steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j))
    if augment.blur > 0:  # defocus and motion soften edges; masks are left sharp (v2 blurs images only)
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel_size=7, sigma=(0.1, 2.0))], p=augment.blur))
    return v2.Compose(steps)


class SegmentationDataset(torch.utils.data.Dataset):
    """Indexes decoded :class:`Samples`; applies a joint transform if given."""

    def __init__(self, samples: Samples, transform=None):
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        image = tv_tensors.Image(self.samples.images[index])
        mask = tv_tensors.Mask(self.samples.masks[index])
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)


def normalize(batch: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
    """uint8 NCHW in [0, 255] to normalised float32."""
    mean_t = torch.tensor(mean, device=batch.device).view(1, -1, 1, 1) * 255
    std_t = torch.tensor(std, device=batch.device).view(1, -1, 1, 1) * 255
    return (batch.float() - mean_t) / std_t


def resize_images(images: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """uint8 3×H×W images -> one uint8 N×3×h×w batch (bilinear, as apps are told to resize)."""
    out = []
    for img in images:
        if tuple(img.shape[-2:]) != tuple(size):
            img = (
                F.interpolate(img[None].float(), size=size, mode="bilinear", align_corners=False)[0]
                .round()
                .clamp(0, 255)
                .to(torch.uint8)
            )
        out.append(img)
    return torch.stack(out)
