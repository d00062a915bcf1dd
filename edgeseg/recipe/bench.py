"""The ``bench:`` and ``gates:`` sections, and the remote devices bench measures on."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgeseg.corruptions import CORRUPTION_NAMES, SEVERITIES
from edgeseg.recipe._base import _Strict


class RobustnessSpec(_Strict):
    """Score every artifact through its runtime on corrupted copies of the headline split's
    images too (``edgeseg/corruptions.py``: seeded, identical pixels for every artifact)."""

    enabled: bool = False
    corruptions: list[Literal[CORRUPTION_NAMES]] = Field(list(CORRUPTION_NAMES), min_length=1)
    severities: list[Literal[SEVERITIES]] = Field([1, 3, 5], min_length=1)
    max_images: int | None = Field(None, ge=1)  # the first N images of the split (a fixed set)

    @field_validator("corruptions", "severities")
    @classmethod
    def _distinct(cls, v: list) -> list:
        if len(set(v)) != len(v):
            raise ValueError("lists an entry more than once: keep one of each")
        return v

    def bench_settings(self) -> dict | None:
        """What ``BenchSpec.robustness`` takes, or None when off."""
        return self.model_dump(mode="json", exclude={"enabled"}) if self.enabled else None


class BenchSection(_Strict):
    """How ``edgeseg build`` measures every artifact (the options of ``edgeseg bench``)."""

    threads: int | None = Field(None, ge=1)
    batches: list[int] = Field([1], min_length=1)
    iterations: int = Field(100, ge=1)
    time_budget_s: float | None = Field(None, gt=0)
    warmup: int = Field(10, ge=0)
    rounds: int = Field(5, ge=1)
    accuracy: bool = True
    max_images: int | None = Field(None, ge=1)
    reference: bool = True  # the fp32 PyTorch model: a table row and the pixel-agreement baseline
    # each int8 artifact scored again on its target's instruction sets this host is not (qemu)
    emulate: bool = True
    remote: list[RemoteDevice] = []  # devices that bench every artifact too (over SSH)
    robustness: RobustnessSpec = RobustnessSpec()
    # frame to class map through the deployment kit, stage by stage, on the headline split's
    # images encoded as files: jpeg as a camera sends them, or png
    end_to_end: bool = False
    frame_encoding: Literal["jpeg", "png"] = "jpeg"
    # each artifact's per-op profile from its runtime's profiler (ONNX Runtime, OpenVINO):
    # where a call's time goes, by op type and slowest nodes, in bench.json and the report
    profile: bool = False

    @model_validator(mode="after")
    def _frames_need_images(self) -> BenchSection:
        if self.end_to_end and not self.accuracy:
            raise ValueError("bench.end_to_end: its frames are the evaluation images; set bench.accuracy: true")
        return self

    @field_validator("remote")
    @classmethod
    def _distinct_devices(cls, v: list[RemoteDevice]) -> list[RemoteDevice]:
        names = [d.name for d in v]
        if len(set(names)) != len(names) or "local" in names:
            raise ValueError("bench.remote: device names must be distinct and not 'local' (the build machine)")
        return v

    @field_validator("batches")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(b < 1 for b in v):
            raise ValueError("bench.batches: batch sizes must be >= 1")
        return v


class GatesSpec(_Strict):
    """Limits every artifact must meet on the bench machine, or the build fails (exit 3).

    ``max_miou_drop`` and ``min_pixel_agreement`` compare with the fp32 PyTorch model; latency is
    the p50 at batch 1. ``max_target_drop`` is the mIoU drop vs fp32 on the worst instruction set
    of an int8 artifact's target (``export.target``), scored under emulation where the build host
    is not that instruction set. ``max_eval_overlap`` is checked by the data stage, before training: the
    share of the headline evaluation split (``eval.splits[0]``) that is a near-duplicate of a
    training image or shares a group with one. A rejected artifact stays on disk for inspection and is marked rejected
    in the manifest and the report, never presented as deployable.
    """

    max_miou_drop: float | None = Field(None, ge=0)
    min_miou: float | None = Field(None, ge=0, le=100)
    max_latency_ms: float | None = Field(None, gt=0)
    min_pixel_agreement: float | None = Field(None, ge=0, le=1)
    max_eval_overlap: float | None = Field(None, ge=0, le=1)
    min_retention: float | None = Field(None, ge=0)  # corrupted / clean mIoU (needs bench.robustness)
    max_target_drop: float | None = Field(None, ge=0)


class RemoteDevice(_Strict):
    """A device reached over SSH (the system ``ssh``: the user's keys and ``~/.ssh/config``).

    ``host`` is ``[user@]host[:port]`` or a ``Host`` alias of the SSH config. ``edgeseg`` is the
    command on the device (a venv's ``bin/edgeseg`` when it is not on the login PATH).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    host: str = Field(min_length=1)
    edgeseg: str = "edgeseg"
    ssh_config: str | None = None
    workdir: str | None = None  # default: a fresh temporary directory on the device
