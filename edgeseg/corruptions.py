"""The camera corruptions edgeseg scores artifacts on: one table, everything else derives from it.

The families are ImageNet-C's (Hendrycks & Dietterich, 2019) as Cityscapes-C uses them, the ones
a camera produces: sensor noise, blur from motion and focus, fog, exposure, contrast, and what a
video pipeline does to frames (JPEG, downscaling). They come from ``imagecorruptions`` (the
maintained ``imagecorruptions-imaug`` fork: the 2020 original calls scikit-image APIs that are
gone), at its severities 1-5. ``darkness`` is the one addition: the library only brightens, and
dusk footage is the shift CamVid users meet, so it is the library's brightness mirrored.

Every corruption is deterministic: the random draws (noise, the motion angle, the fog's fractal)
are seeded from (seed, corruption, severity, image index), so every artifact is scored on the
very same pixels. Nothing but the standard library at import (the CLI's help reads the
table); numpy and the library are imported on first use.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgeseg.errors import DependencyError
from edgeseg.registry import lookup, table

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Corruption:
    name: str
    family: str  # noise | blur | weather | digital
    library_name: str | None  # imagecorruptions' function; None: ``apply`` is edgeseg's


def _darkness(image: np.ndarray, severity: int) -> np.ndarray:
    """The library's ``brightness`` mirrored: the HSV value lowered by the same steps."""
    import numpy as np
    import skimage as sk

    shift = [0.1, 0.2, 0.3, 0.4, 0.5][severity - 1]
    hsv = sk.color.rgb2hsv(image / 255.0)
    hsv[:, :, 2] = np.clip(hsv[:, :, 2] - shift, 0, 1)
    return np.uint8(np.clip(sk.color.hsv2rgb(hsv), 0, 1) * 255)


_OWN: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {"darkness": _darkness}

CORRUPTIONS: dict[str, Corruption] = table(
    (
        Corruption("gaussian_noise", "noise", "gaussian_noise"),
        Corruption("shot_noise", "noise", "shot_noise"),
        Corruption("motion_blur", "blur", "motion_blur"),
        Corruption("defocus_blur", "blur", "defocus_blur"),
        Corruption("fog", "weather", "fog"),
        Corruption("brightness", "weather", "brightness"),
        Corruption("darkness", "weather", None),
        Corruption("contrast", "digital", "contrast"),
        Corruption("jpeg_compression", "digital", "jpeg_compression"),
        Corruption("pixelate", "digital", "pixelate"),
    ),
    "corruption",
)
CORRUPTION_NAMES = tuple(CORRUPTIONS)
SEVERITIES = (1, 2, 3, 4, 5)
INSTALL = "pip install 'edgeseg[robustness]' (imagecorruptions-imaug)"


def _library():
    try:
        import imagecorruptions
    except ImportError:
        raise DependencyError(f"robustness scoring needs the corruption library: {INSTALL}") from None
    return imagecorruptions


def image_seed(seed: int, name: str, severity: int, index: int) -> int:
    """The seed of one corrupted image: stable across processes and Python versions."""
    return zlib.crc32(f"{seed}:{name}:{severity}:{index}".encode()) & 0x7FFFFFFF


def corrupt(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """``image`` (H×W×3 uint8 RGB) corrupted by ``name`` at ``severity``; same shape and dtype.

    The library draws from numpy's global generator, so it is seeded for this call and the
    caller's state is put back afterwards.
    """
    import numpy as np

    corruption = lookup(CORRUPTIONS, name, "corruption")
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity}: corruptions have severities 1 to 5")
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        if corruption.library_name is None:
            out = _OWN[name](image, severity)
        else:
            out = _library().corrupt(image, severity=severity, corruption_name=corruption.library_name)
    finally:
        np.random.set_state(state)
    return np.ascontiguousarray(out[: image.shape[0], : image.shape[1]], dtype=np.uint8)
