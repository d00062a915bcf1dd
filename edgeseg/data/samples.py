"""Decode image/mask pairs once into uint8 tensors held in memory, validating every pair.

Every dataset loader reduces to a list of :class:`PairRef` (image path, mask path, and a label
mapping). Decoding happens here, once, so training epochs read tensors and the model, not PNG
decoding, sets the pace. Bad data never trains silently: each problem names the file, and
``on_bad_sample: skip`` logs, counts and skips instead of failing.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeseg.errors import CorruptDataError, DataError
from edgeseg.limits import limit

log = logging.getLogger(__name__)

IGNORE = 255  # internal ignore value: every loader maps its void label to this

LabelMap = Callable[[np.ndarray, Path], np.ndarray]


@dataclass(frozen=True)
class PairRef:
    """One sample on disk. ``mask`` is None when the loader found no mask for the image."""

    image: Path
    mask: Path | None


@dataclass
class Samples:
    """A decoded split: uint8 images and uint8 masks [H,W] (255 = ignore).

    ``load_split`` gives torch tensors with images [3,H,W]; ``load_split(..., arrays=True)`` and
    the loaders themselves give numpy arrays with images [H,W,3] (no torch needed).
    """

    images: list
    masks: list
    names: list[str]
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


def decode_pairs(
    pairs: Sequence[PairRef],
    *,
    num_classes: int,
    label_map: LabelMap,
    on_bad_sample: str = "error",
    what: str = "dataset",
) -> Samples:
    """Decode and validate every pair.

    Args:
        pairs: the samples on disk.
        num_classes: labels must lie in ``[0, num_classes)`` or equal the ignore value 255.
        label_map: turns the raw mask array into class ids with 255 for ignore; raises
            DataError naming the file for values it cannot map.
        on_bad_sample: "error" raises on the first bad pair; "skip" logs, counts and skips.
        what: a name for the split, for messages.

    Returns:
        The decoded :class:`Samples` (skipped pairs listed in ``skipped``).

    Raises:
        DataError: a bad pair under "error", or no usable pair at all.
    """
    images, masks, names, skipped = [], [], [], []
    for ref in pairs:
        try:
            image, mask = _decode_one(ref, num_classes, label_map)
        except DataError as exc:
            if on_bad_sample != "skip":
                raise
            log.warning("skipping bad sample: %s", exc)
            skipped.append(str(exc))
            continue
        images.append(image)
        masks.append(mask)
        names.append(ref.image.stem)
    if skipped:
        log.warning("%s: skipped %d bad sample(s) of %d", what, len(skipped), len(pairs))
    if not images:
        raise DataError(f"{what}: no usable image/mask pairs ({len(pairs)} found, {len(skipped)} bad)")
    return Samples(images, masks, names, skipped)


def _decode_one(ref: PairRef, num_classes: int, label_map: LabelMap) -> tuple[np.ndarray, np.ndarray]:
    if not ref.image.is_file():
        raise CorruptDataError(f"{ref.image}: image file does not exist")
    if ref.mask is None:
        raise CorruptDataError(f"{ref.image}: image has no mask")
    image = read_image(ref.image)
    raw = read_mask(ref.mask)
    if raw.shape[:2] != image.shape[:2]:
        raise CorruptDataError(
            f"{ref.mask}: mask is {raw.shape[1]}x{raw.shape[0]} but its image {ref.image.name} "
            f"is {image.shape[1]}x{image.shape[0]} (WxH)"
        )
    mask = label_map(raw, ref.mask)
    bad = (mask >= num_classes) & (mask != IGNORE)
    if bad.any():
        values = sorted(set(np.unique(mask[bad]).tolist()))[:5]
        raise CorruptDataError(
            f"{ref.mask}: label values {values} are outside [0, {num_classes}) and not the ignore index"
        )
    return image, mask.astype(np.uint8)


@contextlib.contextmanager
def _opened(path: Path):
    """``Image.open``, refusing past ``image_pixels`` from the header, before anything decodes
    (a 300 KB PNG can decode to 6 GB)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the check below is stricter
        with Image.open(path) as img:
            most = limit("image_pixels")
            if img.width * img.height > most:
                raise _TooLarge(f"{img.width}x{img.height}")
            yield img


class _TooLarge(Exception):
    pass


def _too_large(path: Path, exc: Exception) -> CorruptDataError:
    size = f"{exc} is " if isinstance(exc, _TooLarge) else ""  # PIL's own error: past twice its limit
    return CorruptDataError(
        f"{path}: {size}more than the {limit('image_pixels'):,} pixels edgeseg decodes (limit image_pixels); "
        "resize it first"
    )


def _read(path: Path, what: str, decode):
    """``decode(img)`` on the opened file; every failure is one CorruptDataError naming it."""
    from PIL import Image

    try:
        with _opened(path) as img:
            return decode(img)
    except (_TooLarge, Image.DecompressionBombError) as exc:
        raise _too_large(path, exc) from None
    except FileNotFoundError:
        raise CorruptDataError(f"{path}: {what} file not found") from None
    except Exception as exc:  # PIL raises many types for corrupt files
        raise CorruptDataError(f"{path}: cannot read {what} ({type(exc).__name__}: {exc})") from None


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 HxWx3 array; DataError naming the file if it cannot be read."""
    return _read(path, "image", lambda img: np.array(img.convert("RGB"), dtype=np.uint8))  # writable, for torch


def read_photo(path: Path) -> tuple[np.ndarray, bool]:
    """The image as annotation tools show it: EXIF orientation applied (CVAT, Label Studio and
    LabelMe draw on the rotated photo). Returns the RGB array and whether the EXIF rotated it."""
    from PIL import ImageOps

    def decode(img):
        rotated = img.getexif().get(0x0112, 1) != 1  # the Orientation tag: 1 is as stored
        return np.array(ImageOps.exif_transpose(img).convert("RGB"), dtype=np.uint8), rotated

    return _read(path, "image", decode)


def read_mask(path: Path) -> np.ndarray:
    """The mask as stored: HxW for index/greyscale PNGs, HxWx3 for RGB masks."""

    def decode(img):
        if img.mode in ("RGB", "RGBA"):
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
        return np.asarray(img if img.mode in ("L", "P", "I", "I;16") else img.convert("L"))

    return _read(path, "mask", decode)


def index_label_map(void_value: int | None) -> LabelMap:
    """Masks that store class ids directly; ``void_value`` becomes the ignore index."""

    def apply(raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.ndim != 2:
            raise CorruptDataError(f"{path}: expected a single-channel index mask, got {raw.ndim}-D")
        out = raw.astype(np.int64)
        if void_value is not None:
            out[out == void_value] = IGNORE
        return out

    return apply


def palette_label_map(palette: Sequence[tuple[int, int, int]], ignore_index: int | None = None) -> LabelMap:
    """RGB masks: each colour of ``palette`` is its class id; other colours are an error. Index
    masks among them keep their ids, with ``ignore_index`` as the ignore value."""
    codes = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(palette)}

    def apply(raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.ndim == 2:
            return index_label_map(ignore_index)(raw, path)
        rgb = raw.astype(np.int64)
        packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        out = np.full(packed.shape, -1, dtype=np.int64)
        for code, cls in codes.items():
            out[packed == code] = cls
        unknown = out < 0
        if unknown.any():
            y, x = np.argwhere(unknown)[0]
            raise CorruptDataError(
                f"{path}: {int(unknown.sum())} pixels have colours not in data.palette, "
                f"e.g. {tuple(int(v) for v in raw[y, x])} at x={x}, y={y}"
            )
        return out

    return apply
