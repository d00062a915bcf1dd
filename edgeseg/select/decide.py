"""``select:``: the best artifact that meets every limit, measured on the device it will run on.

A candidate is one measured point (a bundle of one build, or of any variant of a sweep, run by
one runtime computing in one precision: ``onnx-int8@openvino``) with the figures its bench
measured: batch-1 p50 latency and its spread across rounds (CV), peak memory,
file size and mIoU. ``decide`` checks each against the recipe's limits, ranks those that fit by
the objective and says how sure the choice is: the margin to every limit, whether a latency is
within noise of its limit, and whether the winner is within noise of the runner-up. Nothing
here imports torch.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgeseg.errors import GateError
from edgeseg.recipe import SelectSpec

SCHEMA = "edgeseg.decision/1"


@dataclass(frozen=True)
class Limit:
    field: str  # the select: field
    figure: str  # the candidate's figure it bounds
    upper: bool  # True: the figure must not exceed the limit
    label: str


LIMITS = (
    Limit("max_latency_ms", "latency_ms", True, "p50 latency (ms, batch 1)"),
    Limit("max_peak_mb", "peak_mb", True, "peak memory (MB)"),
    Limit("max_size_mb", "size_mb", True, "file size (MB)"),
    Limit("min_miou", "miou", False, "mIoU"),
)
# objective -> (figure, higher is better)
OBJECTIVES = {"miou": ("miou", True), "latency": ("latency_ms", False), "size": ("size_mb", False)}
SECONDARY = {"miou": "latency", "latency": "miou", "size": "miou"}


def candidates_from_bench(results: list[dict], *, variant: str | None = None, settings: dict | None = None) -> list:
    """One candidate per artifact of a ``bench.json`` (the fp32 PyTorch reference is no artifact)."""
    return [_candidate(r, variant, settings or {}) for r in results if r.get("role") != "reference"]


def _candidate(result: dict, variant: str | None, settings: dict) -> dict:
    latency = next((row for row in result["latency"] if row["batch"] == 1 and "skipped" not in row), {})
    artifact, point = result["artifact"], result.get("point") or {}
    return {
        "name": f"{variant}/{result['name']}" if variant else result["name"],
        "variant": variant,
        "artifact": point.get("artifact", result["name"]),
        "settings": settings,
        "bundle": artifact["path"],
        "format": artifact["format"],
        "precision": artifact["precision"],
        # how to run it: the runtime, and the float precision it was asked to compute in (f32: what
        # the file holds, int8 layers included); OpenVINO's session refuses to run at another
        "runtime": result["session"]["runtime"],
        "compute": point.get("compute") or _compute(result["session"]),
        "target": point.get("target"),
        "miou": (result["accuracy"] or {}).get("miou"),
        "latency_ms": latency.get("p50_ms"),
        "latency_cv": latency.get("p50_cv"),
        "peak_mb": result["memory"]["peak_mb"],
        "size_mb": artifact["size_mb"],
        "gmacs": result["model"].get("gmacs"),
        "gates_rejected": result.get("rejected"),
    }


def _compute(session: dict) -> str:
    """A result without a point (a remote device's): the precision OpenVINO reported, else f32."""
    return session["precision"] if session["runtime"] == "openvino" and session["precision"] else "f32"


def decide(candidates: list[dict], spec: SelectSpec) -> dict:
    """The decision as ``decision.json`` holds it; ``chosen`` is None when nothing fits."""
    checks = {c["name"]: _check(c, spec) for c in candidates}
    fitting = [c for c in candidates if not checks[c["name"]]["missed"]]
    ranked = _rank(fitting, spec)
    decision = {
        "schema": SCHEMA,
        "device": spec.device,
        "objective": spec.objective,
        "limits": {lim.field: getattr(spec, lim.field) for lim in LIMITS if getattr(spec, lim.field) is not None},
        "candidates": len(candidates),
        "chosen": None,
        "runner_up": None,
        "within_noise_of_runner_up": False,
        "note": "",
        "ranked": [c["name"] for c in ranked],  # every artifact within the limits, best first
        "missed": {name: check["missed"] for name, check in checks.items() if check["missed"]},
        "closest": None,
    }
    if not ranked:
        closest = min(candidates, key=lambda c: checks[c["name"]]["shortfall"], default=None)
        if closest is not None:
            decision["closest"] = {**_entry(closest, checks), "missed": checks[closest["name"]]["missed"]}
        return decision
    winner, runner_up = ranked[0], ranked[1] if len(ranked) > 1 else None
    decision["chosen"] = _entry(winner, checks)
    if runner_up is not None:
        decision["runner_up"] = _entry(runner_up, checks)
        tied = _tied(winner, runner_up, spec.objective, spec)
        decision["within_noise_of_runner_up"] = tied
        decision["note"] = _tie_note(winner, runner_up, spec) if tied else ""
    return decision


def _check(candidate: dict, spec: SelectSpec) -> dict:
    """Margins to every limit (positive: inside), the limits missed, and how far off in total."""
    margins, missed, shortfall = {}, [], 0.0
    if candidate.get("gates_rejected"):  # the recipe's gates refused it: never deployable
        missed.append(f"rejected by the recipe's gates: {candidate['gates_rejected']}")
        shortfall += 1.0
    for lim in LIMITS:
        limit = getattr(spec, lim.field)
        if limit is None:
            continue
        value = candidate[lim.figure]
        if value is None:
            missed.append(f"{lim.label} was not measured (select.{lim.field} {limit})")
            shortfall += math.inf
            continue
        margin = limit - value if lim.upper else value - limit
        sigma = _sigma(candidate) if lim.figure == "latency_ms" else 0.0
        noisy = sigma > 0 and abs(margin) <= spec.noise_sigmas * sigma
        margins[lim.field] = {"value": value, "limit": limit, "margin": round(margin, 4), "within_noise": noisy}
        if margin < 0:
            relation = "above the maximum" if lim.upper else "below the minimum"
            note = f" (within noise: {spec.noise_sigmas:g} sigma = {spec.noise_sigmas * sigma:.3g})" if noisy else ""
            by = f"by {-margin:.3g}{note}"
            missed.append(f"{lim.label} {value:.4g} is {relation} {limit:g} {by} (select.{lim.field})")
            shortfall += -margin / limit
    return {"margins": margins, "missed": missed, "shortfall": shortfall}


def _sigma(candidate: dict) -> float:
    """The p50's standard deviation across bench rounds, in ms (0 when unmeasured)."""
    cv = candidate.get("latency_cv")
    return 0.0 if cv is None or candidate["latency_ms"] is None else cv * candidate["latency_ms"]


def _rank(fitting: list[dict], spec: SelectSpec) -> list[dict]:
    """Best first by the objective; a tie within noise goes to the better secondary figure."""
    figure, higher = OBJECTIVES[spec.objective]
    second, second_higher = OBJECTIVES[SECONDARY[spec.objective]]

    def score(c: dict, fig: str, hi: bool) -> float:
        value = c[fig]
        return math.inf if value is None else (-value if hi else value)

    ranked = sorted(fitting, key=lambda c: (score(c, figure, higher), score(c, second, second_higher)))
    if len(ranked) > 1 and _tied(ranked[0], ranked[1], spec.objective, spec):
        if score(ranked[1], second, second_higher) < score(ranked[0], second, second_higher):
            ranked[0], ranked[1] = ranked[1], ranked[0]
    return ranked


def _tied(a: dict, b: dict, objective: str, spec: SelectSpec) -> bool:
    if objective == "miou":
        return a["miou"] is not None and b["miou"] is not None and abs(a["miou"] - b["miou"]) <= spec.miou_tie
    if objective == "latency":
        spread = spec.noise_sigmas * math.hypot(_sigma(a), _sigma(b))
        return abs(a["latency_ms"] - b["latency_ms"]) <= spread
    return a["size_mb"] == b["size_mb"]


def _tie_note(winner: dict, runner_up: dict, spec: SelectSpec) -> str:
    tolerance = f"{spec.miou_tie} mIoU" if spec.objective == "miou" else f"{spec.noise_sigmas:g} sigma of the p50s"
    return (
        f"{winner['name']} and {runner_up['name']} are within noise on {spec.objective} ({tolerance}); "
        f"{winner['name']} is chosen on {SECONDARY[spec.objective]}"
    )


def _entry(candidate: dict, checks: dict) -> dict:
    return {**candidate, "margins": checks[candidate["name"]]["margins"]}


def nothing_fits(decision: dict, where: str) -> GateError:
    """Exit 3: no artifact meets every limit; names the closest and by how much it misses."""
    closest = decision["closest"]
    if closest is None:
        return GateError(f"select: no measured artifact to choose from (see {where})")
    return GateError(
        f"select: no artifact meets every limit on device {decision['device']}; the closest is "
        f"{closest['name']}: " + "; ".join(closest["missed"]) + f" (decision in {where})"
    )


def copy_bundle(bundle: Path, out: Path, chosen: dict, device: str) -> None:
    """The chosen bundle as the user deploys it: its model file, model.json and README, with
    ``deployment`` in model.json saying how to run it (the kit and ``edgeseg bench`` follow it)."""
    skip = shutil.ignore_patterns("stage.json", "KEY", ".lock")
    shutil.copytree(bundle, out, ignore=skip)
    sidecar = out / "model.json"
    meta = json.loads(sidecar.read_text())
    meta["deployment"] = deployment(chosen, device)
    sidecar.write_text(json.dumps(meta, indent=2))


def deployment(chosen: dict, device: str) -> dict:
    """The runtime and compute precision the chosen point was measured at on ``device``, and its figures."""
    figures = {k: chosen[k] for k in ("miou", "latency_ms", "peak_mb")}
    return {
        "point": chosen["name"],
        "runtime": chosen["runtime"],
        "compute": chosen["compute"],
        "target": chosen["target"],
        "measured_on": device,
        **figures,
        "decision": "decision.json (beside deploy/)",
    }


def summary_line(decision: dict) -> str:
    """One sentence for the report and the terminal."""
    chosen = decision["chosen"]
    if chosen is None:
        closest = decision["closest"]
        return "No artifact meets every limit" + (f"; closest: {closest['name']}" if closest else "") + "."
    margins = ", ".join(
        f"{field} margin {m['margin']:.3g}{' (within noise)' if m['within_noise'] else ''}"
        for field, m in chosen["margins"].items()
    )
    how = f"{chosen['format']} {chosen['precision']}, {chosen['runtime']} computing in {chosen['compute']}"
    line = f"Deploy {chosen['name']} ({how}) on {decision['device']}: "
    line += f"mIoU {_num(chosen['miou'])}, p50 {_num(chosen['latency_ms'])} ms, peak {_num(chosen['peak_mb'])} MB, "
    line += f"{_num(chosen['size_mb'])} MB; {margins or 'no limits set'}."
    if decision["runner_up"]:
        line += f" Runner-up: {decision['runner_up']['name']}."
    if decision["note"]:
        line += f" {decision['note']}."
    return line


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"
