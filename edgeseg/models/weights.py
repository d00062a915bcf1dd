"""Loading weights into an architecture, strictly, with a readable summary of what does not fit."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from edgeseg.errors import EdgesegError, WeightsError

REFUSED = (
    "holds code or objects that edgeseg refuses to load (it reads tensors and plain data only, "
    "never pickled code); use a file written by torch.save(model.state_dict()) or by edgeseg"
)


def load_tensors(path: Path, error: type[EdgesegError], what: str, field: str | None = None):
    """``torch.load(path, weights_only=True)`` with a one-line error naming the file and the
    recipe field it came from (torch's own message recommends ``weights_only=False``, which a
    user must never do with an untrusted file)."""
    import pickle
    import warnings

    import torch

    where = f"{path} ({field})" if field else str(path)
    try:
        with warnings.catch_warnings():  # torch's protocol warning would precede our one line
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise error(f"{where}: {REFUSED}") from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise error(f"{where}: not a readable {what} ({type(exc).__name__}: {first})") from None


def torchvision_state(weights, field: str) -> dict:
    """A torchvision checkpoint through the hub cache (downloaded when missing), read weights-only.

    torchvision's own builders read the cached file with ``weights_only=False``: a file planted in
    the cache would run its code. edgeseg builds the bare architecture and loads through here.
    """
    import os
    import pickle
    from urllib.parse import urlparse

    import torch.hub

    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)
    try:
        return weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except pickle.UnpicklingError:
        raise WeightsError(f"{cached} ({field} {weights}): {REFUSED}") from None
    except Exception as exc:  # URLError, HTTPError, hash mismatch
        raise WeightsError(
            f"{field} {weights}: cannot download {weights.url} ({type(exc).__name__}: {exc}); with no network, "
            "place the file in $TORCH_HOME/hub/checkpoints/"
        ) from None


def read_state_dict(path: Path | str, field: str | None = None) -> dict:
    """A state dict from a ``.pt``/``.pth`` file, loaded with ``weights_only=True``.

    Checkpoints that wrap the weights (``{"model": ...}``, ``{"state_dict": ...}``) are unwrapped.
    ``field`` names the recipe field the path came from, for messages.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}{f' ({field})' if field else ''}: weights file not found")
    obj = load_tensors(path, WeightsError, "weights file", field)
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
