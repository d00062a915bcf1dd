"""Parity of an artifact with PyTorch on real validation images, through the artifact's runtime.

fp32 artifacts are held to max |Δlogit| and argmax agreement; fp16 and int8 to agreement with
their reference (the fake-quantized torch model for NNCF int8, else fp32). Agreement with fp32
is always reported too. Dynamic shapes are checked at a second size, where the last resize
usually breaks.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from edgeseg.errors import DependencyError, EdgesegError, ExportError, or_storage

log = logging.getLogger(__name__)


def _classes(output: np.ndarray, class_map: bool) -> np.ndarray:
    return output if class_map else output.argmax(1)


@torch.no_grad()
def compare(session, reference, fp32, inputs: torch.Tensor, class_map: bool, channels_last: bool = False) -> dict:
    """Run one image at a time (batch 1 is what every export supports) and compare.

    ``fp32`` is None when there is no float model to compare with (a quantized checkpoint).
    ``channels_last``: the artifact takes N×H×W×C (the references take N×C×H×W).
    """
    max_abs, agree_ref, agree_fp32, pixels = 0.0, 0, 0, 0
    for i in range(len(inputs)):
        x = inputs[i : i + 1]
        got = session.run((x.permute(0, 2, 3, 1) if channels_last else x).contiguous().numpy())
        ref = reference(x).numpy()
        base = ref if fp32 is None or fp32 is reference else fp32(x).numpy()
        if not class_map:
            max_abs = max(max_abs, float(np.abs(got.astype(np.float32) - ref).max()))
        classes = _classes(got, class_map)
        agree_ref += int((classes == _classes(ref, class_map)).sum())
        agree_fp32 += int((classes == _classes(base, class_map)).sum())
        pixels += classes.size
    result = {
        "images": len(inputs),
        "agreement": agree_ref / pixels,
        "agreement_vs_fp32": None if fp32 is None else agree_fp32 / pixels,
    }
    if not class_map:
        result["max_abs_logit"] = max_abs
    return result


def second_size(size: tuple[int, int]) -> tuple[int, int]:
    """Another input size for dynamic-shape checks: three quarters, kept a multiple of 8."""
    return tuple(max(32, (int(s * 0.75) // 8) * 8) for s in size)


def verify_bundle(job, artifact: Path, built) -> dict:
    from edgeseg.data.transforms import resize_images
    from edgeseg.formats import get_format
    from edgeseg.runtimes.session import open_session

    verifier = get_format(job.target.format).verify_runtime
    runtime, device = verifier.name, verifier.device
    try:
        session = open_session(artifact, runtime, device=device)
    except DependencyError:
        raise
    except Exception as exc:
        failed = ExportError(f"{artifact}: {runtime} cannot load the exported artifact ({type(exc).__name__}: {exc})")
        raise or_storage(exc, failed) from None
    class_map = job.spec.output == "class_map"
    inputs = job.model_input(job.verify_images)
    fp32 = None if job.quantized else job.fp32

    def checked(run, *args):
        try:
            return run(*args)
        except Exception as exc:  # a runtime failing on its own artifact is an export failure
            failed = ExportError(f"{artifact}: running the artifact failed ({type(exc).__name__}: {exc})")
            raise or_storage(exc, failed) from None

    result = {
        "runtime": runtime,
        "session": {
            "precision": session.info.precision,
            **{k: v for k, v in session.info.details.items() if k != "providers"},
        },
        "reference": built.reference_kind,
        **checked(compare, session, built.reference, fp32, inputs, class_map, job.channels_last),
    }
    if job.spec.dynamic_hw:
        size = second_size(job.input_size)
        small = job.model_input(resize_images(list(job.verify_images[:2]), size))
        result["at_second_size"] = {
            "size": list(size),
            **checked(compare, session, built.reference, fp32, small, class_map),
        }
    if job.spec.dynamic_batch:
        batch = inputs[:2]
        got = _classes(checked(session.run, batch.numpy()), class_map)
        with torch.no_grad():
            want = _classes(built.reference(batch).numpy(), class_map)
        result["batch_of_2_agreement"] = float((got == want).mean())
    _enforce(job, artifact, result)
    return result


def verify_on_targets(job, artifact: Path, built) -> list[dict]:
    """The int8 parity check again on each instruction set of the target that this host is not,
    with the artifact's runtime under emulation (``edgeseg.runtimes.emulate``); same limits.

    One emulated run serves every instruction set it stands for (arm64 for x86-vnni on a host
    without VNNI). fp32 and fp16 kernels differ between instruction sets by rounding alone: they
    are checked natively only.
    """
    from edgeseg.formats import get_format
    from edgeseg.runtimes.emulate import EmulatedSession, emulation_plan

    if job.target.precision != "int8":
        return []
    verifier = get_format(job.target.format).verify_runtime
    runtime = verifier.name
    inputs = job.model_input(job.verify_images)
    class_map = job.spec.output == "class_map"
    fp32 = None if job.quantized else job.fp32
    checks = []
    for emulated, isas in emulation_plan(job.deployment.name).items():
        why = _why_not_emulated(job, verifier, emulated)
        if why:
            log.warning("%s: not checked on %s numerics: %s", job.target.name, " and ".join(isas), why)
            checks += [
                {"isa": isa, "emulated": emulated, "runtime": runtime, "checked": False, "why": why} for isa in isas
            ]
            continue
        log.info("verifying %s on %s numerics (emulated)", job.target.name, " and ".join(isas))
        try:
            with EmulatedSession(artifact, runtime, isas[0]) as session:
                figures = compare(session, built.reference, fp32, inputs, class_map, job.channels_last)
                details = session.info.details
        except EdgesegError as exc:
            raise type(exc)(f"{job.target.name} for target '{job.deployment.name}': {exc}") from None
        for isa in isas:
            check = {"isa": isa, "emulated": emulated, "runtime": runtime, "checked": True, "session": details}
            check.update(reference=built.reference_kind, **figures)
            _enforce(job, artifact, check, on=f"on emulated {isa}")
            checks.append(check)
    return checks


def _why_not_emulated(job, verifier, emulated: str) -> str | None:
    """Why an emulated check is skipped, for model.json; None when it runs."""
    if not job.spec.verify.on_target:
        return "export.verify.on_target is false"
    if emulated not in verifier.emulated_on:
        because = f": {verifier.not_emulated}" if verifier.not_emulated else ""
        return f"{verifier.name} cannot run under emulated {emulated} here{because}"
    return None


def _enforce(job, artifact: Path, result: dict, on: str = "") -> None:
    """Fail the export when the artifact disagrees more than the recipe allows."""
    limits = job.spec.verify
    precision = job.target.precision
    minimum = {"fp32": limits.min_agreement_fp32, "fp16": limits.min_agreement_fp16, "int8": limits.min_agreement_int8}[
        precision
    ]
    checks = [("agreement", result["agreement"], minimum, ">=")]
    if "at_second_size" in result:
        checks.append(("agreement at the second size", result["at_second_size"]["agreement"], minimum, ">="))
    if "batch_of_2_agreement" in result:
        checks.append(("agreement at batch 2", result["batch_of_2_agreement"], minimum, ">="))
    if precision == "fp32" and "max_abs_logit" in result:
        checks.append(("max |Δlogit|", result["max_abs_logit"], limits.max_abs_logit_fp32, "<="))
    failed = [
        (name, value, limit, op)
        for name, value, limit, op in checks
        if not (value >= limit if op == ">=" else value <= limit)
    ]
    result["passed"] = not failed
    result["limits"] = {
        "min_agreement": minimum,
        **({"max_abs_logit": limits.max_abs_logit_fp32} if precision == "fp32" else {}),
    }
    if failed:
        detail = "; ".join(f"{name} {value:.6g} (limit {op} {limit:g})" for name, value, limit, op in failed)
        where = f" {on}" if on else ""
        raise ExportError(
            f"{artifact}: {job.target.name} disagrees with its PyTorch reference ({result['reference']})"
            f"{where}: {detail}. Limits are export.verify.* in the recipe."
        )
