"""PyTorch eager session over an edgeseg checkpoint: the reference every artifact is held to."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.runtimes.session import InputSpec, SessionInfo


class TorchSession:
    def __init__(
        self, path: Path, *, device: str = "cpu", threads: int | None = None, precision_hint: str | None = None
    ):
        import torch

        from edgeseg.models.checkpoint import load_model

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self._device = torch.device("cuda" if device in ("cuda", "gpu") else device)
        self._model = load_model(path).model.to(self._device).eval()
        self.input = InputSpec("image", (None, 3, None, None), "float32")
        self.info = SessionInfo(
            "torch", str(self._device), torch.get_num_threads(), "fp32", {"torch": torch.__version__}
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            out = self._model(self._torch.from_numpy(batch).to(self._device))
            if self._device.type == "cuda":
                self._torch.cuda.synchronize()
            return out.float().cpu().numpy()
