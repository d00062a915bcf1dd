"""The recipe's ``gates:``, checked on the bench results: which artifacts the build refuses to ship."""

from __future__ import annotations

from edgeseg.recipe import GatesSpec


def check_gates(gates: GatesSpec, results: list[dict]) -> dict[str, list[str]]:
    """Artifact name -> the gates it failed, each as "metric value vs limit (gates.field)"."""
    reference = next((r for r in results if r.get("role") == "reference"), None)
    reference_miou = ((reference or {}).get("accuracy") or {}).get("miou")
    failures: dict[str, list[str]] = {}
    for r in results:
        if r.get("role") == "reference":
            continue
        accuracy = r["accuracy"] or {}
        latency = next((row for row in r["latency"] if row["batch"] == 1 and "skipped" not in row), {})
        checks = [
            (
                "mIoU drop vs fp32",
                None if accuracy.get("miou") is None or reference_miou is None else reference_miou - accuracy["miou"],
                gates.max_miou_drop,
                "max_miou_drop",
                max,
            ),
            ("mIoU", accuracy.get("miou"), gates.min_miou, "min_miou", min),
            ("p50 latency (ms, batch 1)", latency.get("p50_ms"), gates.max_latency_ms, "max_latency_ms", max),
            (
                "retention under corruption (corrupted / clean mIoU)",
                (accuracy.get("robustness") or {}).get("retention"),
                gates.min_retention,
                "min_retention",
                min,
            ),
            (
                "mIoU drop vs fp32 on the target's worst instruction set",
                _target_drop(accuracy, reference_miou),
                gates.max_target_drop,
                "max_target_drop",
                max,
            ),
            (
                "pixel agreement with fp32",
                accuracy.get("agreement_with_reference"),
                gates.min_pixel_agreement,
                "min_pixel_agreement",
                min,
            ),
        ]
        for metric, value, limit, field, kind in checks:
            if limit is None:
                continue
            if value is None:
                failures.setdefault(r["name"], []).append(f"{metric} was not measured (gates.{field} {limit})")
            elif (kind is max and value > limit) or (kind is min and value < limit):
                relation = "above the maximum" if kind is max else "below the minimum"
                failures.setdefault(r["name"], []).append(f"{metric} {value:.4g} is {relation} {limit} (gates.{field})")
    return failures


def _target_drop(accuracy: dict, reference_miou: float | None) -> float | None:
    """fp32 mIoU minus the lowest of the native and the emulated (``on_target``) figures."""
    figures = [accuracy.get("miou"), *(check["miou"] for check in accuracy.get("on_target", []))]
    if reference_miou is None or any(f is None for f in figures):
        return None
    return reference_miou - min(figures)


def mark_rejected(results: list[dict], rejected: dict[str, list[str]]) -> list[dict]:
    """The results with ``rejected`` set (the gates each missed, joined) on those the gates refused."""
    return [{**r, "rejected": "; ".join(rejected[r["name"]])} if r["name"] in rejected else r for r in results]
