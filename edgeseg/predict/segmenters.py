"""What turns frames into class maps: a bundle through the deployment kit (``kit``, the very file
app integrators copy from ``export/python/segment.py``; torch-free), or an edgeseg checkpoint
through PyTorch. Both answer ``segment(rgb, alpha) -> kit.Frame`` with the stages timed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.predict import kit


def open_segmenter(
    model: Path, runtime: str | None = None, threads: int | None = None, compute: str | None = None, video=False
):
    """A bundle directory's kit Segmenter (its proof checked), or a checkpoint's; ``video``: set
    up to share the cores with a decoder and encoders (``kit.Segmenter``).

    Raises:
        RecipeError: a directory without model.json, or --runtime/--compute with a checkpoint (exit 2).
        ExportError: the bundle's model.json does not describe its artifact (exit 8).
    """
    from edgeseg.bundle import SIDECAR
    from edgeseg.errors import ExportError, RecipeError

    if model.is_dir():
        if not (model / SIDECAR).is_file():
            raise RecipeError(
                f"{model}: not a bundle (no {SIDECAR}); give runs/<name>/deploy, an export-* folder or a .pt"
            )
        try:
            return kit.Segmenter(model, runtime, threads, compute, video)
        except kit.BundleMismatch as exc:
            raise ExportError(str(exc)) from None
    if runtime or compute:
        raise RecipeError(f"{model}: --runtime and --compute choose how a bundle runs; a checkpoint runs in PyTorch")
    from edgeseg.models.checkpoint import load_model

    return CheckpointSegmenter(load_model(model), threads)


class CheckpointSegmenter:
    """A checkpoint's model in PyTorch, eval mode: resizing and normalising happen in torch, so
    they are timed inside "infer"."""

    def __init__(self, loaded, threads: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.loaded = loaded
        self.palette_bytes = kit.palette_bytes(loaded.palette)

    def segment(self, rgb: np.ndarray, alpha: float | None = 0.5) -> kit.Frame:
        import torch

        from edgeseg.eval import predict_logits

        clock, loaded = kit.Clock(), self.loaded
        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0)
            logits = clock("infer", predict_logits(loaded.model, batch, loaded.mean, loaded.std, loaded.input_size))
        # the kit's argmax: torch's over the channels of a channels-last tensor took 30 ms at 360x480
        classes = clock("argmax", kit.argmax_ids(logits[0].contiguous().numpy()))
        overlay = clock("colour", None if alpha is None else kit.paint(rgb, classes, self.palette_bytes, alpha))
        return kit.Frame(classes, overlay, clock.ms)
