"""Loading weights into an architecture, strictly, with a readable summary of what does not fit."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from edgeseg.errors import WeightsError


def read_state_dict(path: Path | str) -> dict:
    """A state dict from a ``.pt``/``.pth`` file, loaded with ``weights_only=True``.

    Checkpoints that wrap the weights (``{"model": ...}``, ``{"state_dict": ...}``) are unwrapped.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: not a loadable weights file ({type(exc).__name__}: {exc})") from None
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a state dict, found {type(obj).__name__}")
    return obj


def load_checked(module, state: Mapping, source: str, *, allow_unexpected: tuple[str, ...] = ()) -> None:
    """``module.load_state_dict(state)`` that fails with a summary of mismatched keys.

    Args:
        module: the target nn.Module.
        state: the state dict to load.
        source: where the weights came from, for the message.
        allow_unexpected: key prefixes that may be present in ``state`` but not in ``module``
            (e.g. a classification head when loading a backbone).

    Raises:
        WeightsError: listing missing, unexpected and shape-mismatched keys.
    """
    own = module.state_dict()
    # BatchNorm's step counter is bookkeeping, absent from many exported checkpoints.
    state = {**{k: v for k, v in own.items() if k.endswith("num_batches_tracked")}, **state}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own and not k.startswith(allow_unexpected)]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        raise WeightsError(
            f"{source}: does not fit {type(module).__name__} "
            f"({len(own)} keys expected, {len(state)} given): "
            + "; ".join(
                f"{label} {len(keys)}: {', '.join(keys[:4])}{', …' if len(keys) > 4 else ''}"
                for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes))
                if keys
            )
        )
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=True)
