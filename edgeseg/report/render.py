"""The build's report: ``metrics.json``, ``report.md`` and a self-contained ``report.html``.

Everything in it comes from the bench results of this run (``edgeseg.bench``): the artifact
table, accuracy against latency with the Pareto front marked, per-class IoU of every artifact
against the fp32 model, sample validation images with the fp32 and the fastest artifact's
predictions side by side, and the environment the figures were taken in. Plots are PNGs
embedded as data URIs, so the page opens anywhere without its directory.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

METRICS_SCHEMA = "edgeseg.metrics/1"
# The pages' shared look (report, sweep, study): plain tables, numbers right-aligned.
PAGE_CSS = """body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1.5rem 0; } img { max-width: 100%; } figcaption { color: #555; font-size: 0.9rem; }"""


def batch1(result: dict) -> dict | None:
    """The batch-1 latency row of a bench result (None if batch 1 was not measured)."""
    return next((row for row in result["latency"] if row["batch"] == 1 and "skipped" not in row), None)


def artifact_rows(results: list[dict]) -> list[dict]:
    """One flat row per measured artifact: the ``metrics.json`` entries."""
    rows = []
    for r in results:
        latency, accuracy = batch1(r) or {}, r["accuracy"] or {}
        rows.append(
            {
                "name": r["name"],
                "role": r.get("role", "artifact"),
                "format": r["artifact"]["format"],
                "precision": r["artifact"]["precision"],
                "runtime": r["session"]["runtime"],
                "compute_precision": r["session"]["precision"],
                "path": r["artifact"]["path"],
                "size_mb": r["artifact"]["size_mb"],
                "gmacs": r["model"].get("gmacs"),
                "params_m": r["model"].get("params_m"),
                "miou": accuracy.get("miou"),
                "pixel_accuracy": accuracy.get("pixel_accuracy"),
                "agreement_with_fp32": accuracy.get("agreement_with_reference"),
                "latency_ms": {k: latency.get(f"{k}_ms") for k in ("p50", "p90", "p99", "mean", "std", "min")},
                "latency_cv": latency.get("p50_cv"),
                "throughput_ips": latency.get("throughput_ips"),
                "peak_mem_mb": r["memory"]["peak_mb"],
                "session_create_s": r["session"]["create_s"],
                "rejected": r.get("rejected"),  # the gates it failed, or None
                "robustness": robustness_row(accuracy.get("robustness")),
                "end_to_end": end_to_end_row(r.get("end_to_end")),
                "profile": profile_row(r.get("profile")),
                "compute_floor_ms": (r.get("floor") or {}).get("compute_floor_ms"),
                "p50_over_floor": (r.get("floor") or {}).get("p50_over_floor"),
                "on_target": [
                    {k: check[k] for k in ("isa", "miou", "agreement_with_native")}
                    for check in accuracy.get("on_target", [])
                ],
            }
        )
    return rows


def robustness_row(robustness: dict | None) -> dict | None:
    """An artifact's robustness in ``metrics.json``: clean and mean corrupted mIoU, retention,
    and each corruption's retention (severities averaged)."""
    if not robustness:
        return None
    return {
        "images": robustness["images"],
        "clean_miou": robustness["clean_miou"],
        "mean_miou": robustness["mean_miou"],
        "retention": robustness["retention"],
        "retention_by_corruption": {k: v["retention"] for k, v in robustness["corruptions"].items()},
    }


def end_to_end_row(section: dict | None) -> dict | None:
    """An artifact's frame-to-class-map latency in ``metrics.json``: each stage's p50, the
    total's p50/p99, FPS, and the total over model-only p50."""
    if not section or "skipped" in section:
        return None
    return {
        "encoding": section["encoding"],
        "stages_p50_ms": {stage: round(v["p50_ms"], 3) for stage, v in section["stages"].items()},
        "p50_ms": round(section["total"]["p50_ms"], 3),
        "p99_ms": round(section["total"]["p99_ms"], 3),
        "fps": round(section["fps"], 1),
        "ratio_p50": section["ratio_p50"],
    }


def profile_row(profile: dict | None) -> dict | None:
    """An artifact's per-op profile in ``metrics.json``: the call, the ops' sum and the op types
    that take the most of it (bench.json keeps every type and the slowest nodes)."""
    if not profile or "skipped" in profile:
        return None
    top = [{k: row[k] for k in ("op_type", "ms", "share", "nodes")} for row in profile["by_type"][:PROFILE_TYPES]]
    return {"runtime": profile["runtime"], "call_ms": profile["call_ms"], "ops_ms": profile["ops_ms"], "top": top}


PROFILE_TYPES = 4  # op types per artifact in metrics.json and the report


def pareto_front(rows: list[dict]) -> set[str]:
    """Names of the rows no other row beats on both latency (lower) and mIoU (higher).

    Artifacts the recipe's gates rejected are not deployable, so they are never on the front.
    """
    scored = [r for r in rows if r["miou"] is not None and r["latency_ms"]["p50"] is not None and not r["rejected"]]
    front = set()
    for r in scored:
        dominated = any(
            o["latency_ms"]["p50"] <= r["latency_ms"]["p50"]
            and o["miou"] >= r["miou"]
            and (o["latency_ms"]["p50"] < r["latency_ms"]["p50"] or o["miou"] > r["miou"])
            for o in scored
        )
        if not dominated:
            front.add(r["name"])
    return front


def write_report(
    results: list[dict],
    out: Path,
    *,
    title: str,
    samples=None,
    palette=None,
    predictions_dir: Path | None = None,
    generalisation: dict | None = None,
    not_run: list[dict] | None = None,
    decision: dict | None = None,
    devices: dict[str, list[dict]] | None = None,
) -> dict:
    """Write ``metrics.json``, ``report.md`` and ``report.html`` into ``out``.

    Args:
        results: bench results; the one whose ``role`` is ``reference`` is the fp32 baseline.
        out: the directory (created).
        title: the page title (the recipe name).
        samples: the validation split as numpy arrays, for the sample-image figure.
        palette: RGB per class id.
        predictions_dir: ``<name>.npz`` class ids per artifact, as the bench stage saved them.
        generalisation: ``{"overlap": data.json's overlap, "evaluation": split -> eval metrics}``:
            how much each split leaks and the fp32 scores per split and per group.
        not_run: ``{"name", "reason"}`` for exports this machine could not run (a Core ML
            package off macOS): listed under the table, never silently missing.
        decision: ``select:``'s decision.json: the report opens with it.
        devices: device name -> its bench results (``bench.remote``): one column group each,
            beside this machine's.

    Returns:
        The metrics.json contents.
    """
    from edgeseg.report import plots

    out.mkdir(parents=True, exist_ok=True)
    rows = artifact_rows(results)
    front = pareto_front(rows)
    environment = results[0]["environment"] if results else {}
    metrics = {
        "schema": METRICS_SCHEMA,
        "title": title,
        "artifacts": rows,
        "pareto_front": sorted(front),
        "environment": environment,
    }
    if generalisation is not None:
        metrics["generalisation"] = generalisation_summary(generalisation)
    if not_run:
        metrics["not_run"] = not_run
    if decision is not None:
        metrics["decision"] = decision
    device_rows = {"local": rows, **{d: artifact_rows(r) for d, r in (devices or {}).items()}}
    if devices:
        metrics["devices"] = {d: device_rows[d] for d in devices}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))

    reference = next((r for r in results if r.get("role") == "reference"), None)
    figures = {
        "tradeoff": plots.accuracy_vs_latency(rows, front),
        "per_class": plots.per_class_iou(results, reference),
    }
    fastest = min(
        (
            r
            for r in rows
            if r["miou"] is not None
            and r["latency_ms"]["p50"] is not None
            and r["role"] != "reference"
            and not r["rejected"]
        ),
        key=lambda r: r["latency_ms"]["p50"],
        default=None,
    )
    if samples is not None and predictions_dir is not None and reference is not None and fastest is not None:
        shown = {
            "fp32 (reference)": _load_predictions(predictions_dir, reference["name"]),
            f"fastest: {fastest['name']}": _load_predictions(predictions_dir, fastest["name"]),
        }
        if all(v is not None for v in shown.values()):
            figures["samples"] = plots.sample_predictions(samples, shown, np.asarray(palette, np.uint8))
    summary = metrics.get("generalisation")
    note = _not_run_line(not_run)
    extra = {"decision": decision, "devices": device_rows if devices else None}
    markdown = _markdown(title, rows, front, results, reference, environment, summary, note, **extra)
    (out / "report.md").write_text(markdown)
    page = _html(title, rows, front, results, reference, environment, figures, summary, note, **extra)
    (out / "report.html").write_text(page)
    return metrics


def _device_table(devices: dict[str, list[dict]]) -> tuple[list[str], list[list[str]]]:
    """One column group per device: p50, peak memory and mIoU of every artifact measured there."""
    names = list(dict.fromkeys(r["name"] for rows in devices.values() for r in rows if r["role"] != "reference"))
    head = ["artifact"] + [f"{d} {what}" for d in devices for what in ("p50 ms", "CV", "peak MB", "mIoU")]
    body = []
    for name in names:
        cells = [name]
        for rows in devices.values():
            r = next((row for row in rows if row["name"] == name), None)
            if r is None:
                cells += ["–"] * 4
                continue
            cv = None if r["latency_cv"] is None else 100 * r["latency_cv"]
            cells += [_fmt(r["latency_ms"]["p50"]), _fmt(cv, 1, "%"), _fmt(r["peak_mem_mb"], 0), _fmt(r["miou"])]
        body.append(cells)
    return head, body


def _decision_lines(decision: dict) -> list[str]:
    """The decision in plain sentences: the choice, then every artifact that missed and why."""
    from edgeseg.select.decide import summary_line

    lines = [summary_line(decision)]
    lines += [f"{name}: {'; '.join(missed)}" for name, missed in decision["missed"].items()]
    return lines


def generalisation_summary(generalisation: dict) -> dict:
    """Per split: how much of it leaks (overlap with training) and the fp32 mIoU, overall and per group."""
    overlap, evaluation = generalisation.get("overlap") or {}, generalisation.get("evaluation") or {}
    splits = {}
    for split in dict.fromkeys([*evaluation, *overlap]):
        leak, scores = overlap.get(split), evaluation.get(split) or {}
        splits[split] = {
            "images": scores.get("images", (leak or {}).get("images")),
            "miou": scores.get("miou"),
            "leaked_fraction": leak["leaked_fraction"] if leak else None,
            "near_duplicate_fraction": leak["near_duplicate_fraction"] if leak else None,
            "shared_groups": sorted((leak.get("groups") or {}).get("shared", {})) if leak else [],
            "verdict": leak["verdict"] if leak else "trained on: its score measures fit, not generalisation",
            "per_group": {
                g: {"images": m["images"], "miou": m["miou"]} for g, m in scores.get("per_group", {}).items()
            },
        }
    return {"splits": splits}


def _generalisation_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    head = ["split", "images", "overlaps training", "near-duplicates", "fp32 mIoU", "per group (mIoU)"]
    body = []
    for split, s in summary["splits"].items():
        groups = ", ".join(f"{g} {_fmt(m['miou'], 1)} ({m['images']})" for g, m in s["per_group"].items())
        body.append(
            [
                split,
                _fmt(s["images"]),
                _fmt(None if s["leaked_fraction"] is None else 100 * s["leaked_fraction"], 0, "%"),
                _fmt(None if s["near_duplicate_fraction"] is None else 100 * s["near_duplicate_fraction"], 0, "%"),
                _fmt(s["miou"]),
                groups or "–",
            ]
        )
    return head, body


def prediction_file(predictions_dir: Path, name: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return predictions_dir / f"{safe}.npz"


def _load_predictions(predictions_dir: Path, name: str) -> list[np.ndarray] | None:
    from edgeseg.bench.accuracy import load_predictions

    path = prediction_file(predictions_dir, name)
    return load_predictions(path) if path.is_file() else None


# --------------------------------------------------------------------------------------------
# Text


def _fmt(value, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}{suffix}" if isinstance(value, float) else f"{value}{suffix}"


def _table(rows: list[dict], front: set[str], reference_miou: float | None) -> tuple[list[str], list[list[str]]]:
    head = [
        "artifact",
        "format",
        "precision",
        "runtime (computes in)",
        "size MB",
        "GMACs",
        "mIoU",
        "Δ vs fp32",
        "mIoU on target (emulated)",
        "agree fp32",
        "p50 ms",
        "p50 / floor",
        "p90 ms",
        "p99 ms",
        "img/s",
        "CV",
        "peak MB",
        "load s",
    ]
    body = []
    for r in rows:
        delta = None if r["miou"] is None or reference_miou is None else r["miou"] - reference_miou
        name = r["name"] + (" ★" if r["name"] in front else "") + (" (rejected)" if r["rejected"] else "")
        body.append(
            [
                name,
                r["format"],
                r["precision"],
                f"{r['runtime']} ({r['compute_precision']})",
                _fmt(r["size_mb"]),
                _fmt(r["gmacs"], 3),
                _fmt(r["miou"]),
                "" if r["role"] == "reference" else _fmt(delta, 2),
                ", ".join(f"{c['isa']} {_fmt(c['miou'])}" for c in r.get("on_target", [])),
                _fmt(None if r["agreement_with_fp32"] is None else 100 * r["agreement_with_fp32"], 2, "%"),
                _fmt(r["latency_ms"]["p50"]),
                _fmt(r.get("p50_over_floor"), 1, "x"),
                _fmt(r["latency_ms"]["p90"]),
                _fmt(r["latency_ms"]["p99"]),
                _fmt(r["throughput_ips"], 1),
                _fmt(None if r["latency_cv"] is None else 100 * r["latency_cv"], 1, "%"),
                _fmt(r["peak_mem_mb"], 0),
                _fmt(r["session_create_s"], 2),
            ]
        )
    return head, body


def _environment_lines(env: dict) -> list[tuple[str, str]]:
    lines = [
        ("CPU", f"{env.get('cpu')} ({', '.join(env.get('cpu_flags', []))})"),
        ("cores", f"{env.get('cores_available')} available of {env.get('cores_online')}"),
        ("CPU clock", json.dumps(env.get("cpu_clock") or "not exposed")),
        ("OS", env.get("os", "")),
        ("Python", env.get("python", "")),
    ]
    for gpu in env.get("gpus", []):
        lines.append(("GPU", ", ".join(f"{k} {v}" for k, v in gpu.items())))
    if env.get("jetson"):
        lines.append(("Jetson", json.dumps(env["jetson"])))
    lines.append(("versions", ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())))
    return lines


def _settings_line(results: list[dict]) -> str:
    if not results:
        return ""
    s, latency = results[0]["settings"], batch1(results[0]) or {}
    budget = f"{s['budget_s']} s per batch size" if s.get("budget_s") else f"{s['iterations']} timed calls"
    return (
        f"Batch 1, {s['threads'] or 'default'} threads, each artifact in a fresh process; "
        f"warm-up of at least {s['warmup']} calls and {s['warmup_s']} s "
        f"({latency.get('warmup', {}).get('calls', '?')} calls for the first artifact); "
        f"{budget} in {s['rounds']} rounds. "
        "CV is the coefficient of variation of the rounds' p50. ★ marks the accuracy/latency Pareto front."
    )


def _not_run_line(not_run: list[dict] | None) -> str:
    if not not_run:
        return ""
    return "Not measured on this machine: " + "; ".join(f"{n['name']} ({n['reason']})" for n in not_run) + "."


def _markdown(
    title, rows, front, results, reference, env, generalisation=None, note="", decision=None, devices=None
) -> str:
    head, body = _table(rows, front, reference["accuracy"]["miou"] if reference and reference["accuracy"] else None)
    lines = [f"# {title}", ""]
    if decision is not None:
        first, *missed = _decision_lines(decision)
        lines += ["## Decision", "", first, ""] + [f"- {m}" for m in missed] + ([""] if missed else [])
    lines += [
        "## Artifacts",
        "",
        _settings_line(results),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    if note:
        lines += ["", note]
    if devices:
        head, body = _device_table(devices)
        lines += ["", "## Measured on each device", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
    if reference and reference["accuracy"]:
        classes = list(reference["accuracy"]["per_class_iou"])
        lines += [
            "",
            "## Per-class IoU (Δ against fp32)",
            "",
            "| artifact | " + " | ".join(classes) + " |",
            "|---|" + "---|" * len(classes),
        ]
        ref_iou = reference["accuracy"]["per_class_iou"]
        lines.append("| fp32 (reference) | " + " | ".join(_fmt(ref_iou[c]) for c in classes) + " |")
        for r in results:
            if r is reference or not r["accuracy"]:
                continue
            iou = r["accuracy"]["per_class_iou"]
            cells = [_fmt(None if iou[c] is None or ref_iou[c] is None else iou[c] - ref_iou[c]) for c in classes]
            lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    lines += _table_markdown("Frame to class map", END_TO_END_NOTE, _end_to_end_table(rows))
    lines += _table_markdown("Where the time goes", PROFILE_NOTE, _profile_table(rows))
    robust = _robustness_table(rows)
    if robust:
        head, body = robust
        lines += ["", "## Robustness to camera corruptions", "", ROBUSTNESS_NOTE, ""]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(cells) + " |" for cells, _ in body]
    if generalisation:
        head, body = _generalisation_rows(generalisation)
        lines += ["", "## Does the score hold on new scenes?", ""]
        lines += [f"- {s['verdict']}" for s in generalisation["splits"].values()]
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
    lines += ["", "## Environment", ""] + [f"- **{k}**: {v}" for k, v in _environment_lines(env)]
    return "\n".join(lines) + "\n"


ROBUSTNESS_NOTE = (
    "Retention = mIoU on corrupted copies / clean mIoU on the same images, per corruption averaged over its "
    "severities, through each artifact's own runtime (seeded corruptions: identical pixels for every artifact)."
)


END_TO_END_NOTE = (
    "The deployment kit's own path (export/python/segment.py) from an encoded image file to the class map "
    "and its colour overlay, batch 1, p50 ms of each stage; model-only is the artifact's batch-1 p50 above."
)


def _end_to_end_table(rows: list[dict]) -> tuple[list[str], list[list[str]]] | None:
    """Artifact x stage p50 (ms), the total's p50/p99, FPS and its ratio to model-only p50."""
    measured = [r for r in rows if r.get("end_to_end")]
    if not measured:
        return None
    from edgeseg.predict.kit import STAGES

    found = {s for r in measured for s in r["end_to_end"]["stages_p50_ms"]}
    stages = sorted(found, key=lambda s: STAGES.index(s) if s in STAGES else len(STAGES))
    head = ["artifact", "files", "model-only p50", *stages, "total p50", "total p99", "FPS", "x model-only"]
    body = []
    for r in measured:
        e2e = r["end_to_end"]
        cells = [r["name"], e2e["encoding"], _fmt(r["latency_ms"]["p50"])]
        cells += [_fmt(e2e["stages_p50_ms"].get(s)) for s in stages]
        cells += [_fmt(e2e["p50_ms"]), _fmt(e2e["p99_ms"]), _fmt(e2e["fps"], 1), _fmt(e2e["ratio_p50"])]
        body.append(cells)
    return head, body


PROFILE_NOTE = (
    "Batch 1 through each runtime's own profiler (ONNX Runtime's trace, OpenVINO's per-layer counters), in a "
    "second session after timing: ms per call of the op types that take the most, their share of the ops' sum "
    "and how many nodes; bench.json has every type and the slowest nodes with their kernels."
)


def _profile_table(rows: list[dict]) -> tuple[list[str], list[list[str]]] | None:
    """Artifact x its heaviest op types: 'QLinearConv 5.08 ms (78%, 51 nodes)'."""
    measured = [r for r in rows if r.get("profile")]
    if not measured:
        return None
    head = ["artifact", "runtime", "call ms", "ops ms", *(f"op type {i + 1}" for i in range(PROFILE_TYPES))]
    body = []
    for r in measured:
        profile = r["profile"]
        cells = [r["name"], profile["runtime"], _fmt(profile["call_ms"]), _fmt(profile["ops_ms"])]
        ops = [f"{t['op_type']} {t['ms']:.2f} ms ({100 * t['share']:.0f}%, {t['nodes']} nodes)" for t in profile["top"]]
        body.append(cells + ops + [""] * (PROFILE_TYPES - len(ops)))
    return head, body


def _table_markdown(title: str, note: str, table: tuple[list[str], list[list[str]]] | None) -> list[str]:
    if not table:
        return []
    head, body = table
    lines = ["", f"## {title}", "", note, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in body]


def _table_html(title: str, note: str, table_id: str, table: tuple[list[str], list[list[str]]] | None) -> str:
    if not table:
        return ""
    esc, (head, body) = html.escape, table
    cells = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in texts) + "</tr>" for texts in body)
    return (
        f"<h2>{esc(title)}</h2><p>{esc(note)}</p><table id='{table_id}'><thead><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + f"</tr></thead><tbody>{cells}</tbody></table>"
    )


def _robustness_table(rows: list[dict]) -> tuple[list[str], list[tuple[list[str], list[float | None]]]] | None:
    """Artifact x corruption retention (%), with each cell's retention for the heat map colour."""
    measured = [r for r in rows if r.get("robustness")]
    if not measured:
        return None
    corruptions = list(dict.fromkeys(c for r in measured for c in r["robustness"]["retention_by_corruption"]))
    head = ["artifact", "images", "clean mIoU", "corrupted mIoU", "retention", *corruptions]
    body = []
    for r in measured:
        rob = r["robustness"]
        values = [rob["retention"], *(rob["retention_by_corruption"].get(c) for c in corruptions)]
        cells = [r["name"], _fmt(rob["images"]), _fmt(rob["clean_miou"]), _fmt(rob["mean_miou"])]
        cells += [_fmt(None if v is None else 100 * v, 1, "%") for v in values]
        body.append((cells, [None] * 4 + values))
    return head, body


def _heat(retention: float | None) -> str:
    """A cell colour from red (half the score or less kept) through yellow to green (all kept)."""
    if retention is None:
        return ""
    hue = 120 * min(1.0, max(0.0, (retention - 0.5) / 0.5))
    return f" style='background: hsl({hue:.0f}, 70%, 80%)'"


def _robustness_html(rows: list[dict]) -> str:
    robust = _robustness_table(rows)
    if not robust:
        return ""
    esc = html.escape
    head, body = robust
    cells = "".join(
        "<tr>" + "".join(f"<td{_heat(v)}>{esc(c)}</td>" for c, v in zip(texts, values, strict=True)) + "</tr>"
        for texts, values in body
    )
    return (
        f"<h2>Robustness to camera corruptions</h2><p>{esc(ROBUSTNESS_NOTE)}</p><table id='robustness'><thead><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + f"</tr></thead><tbody>{cells}</tbody></table>"
    )


def _generalisation_html(summary: dict | None) -> str:
    if not summary:
        return ""
    esc = html.escape
    head, body = _generalisation_rows(summary)
    verdicts = "".join(f"<li>{esc(s['verdict'])}</li>" for s in summary["splits"].values())
    rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>" for cells in body)
    return (
        "<h2>Does the score hold on new scenes?</h2>"
        f"<ul id='leaks'>{verdicts}</ul><table id='generalisation'><thead><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def _decision_html(decision: dict | None) -> str:
    if decision is None:
        return ""
    esc = html.escape
    first, *missed = _decision_lines(decision)
    items = "".join(f"<li>{esc(m)}</li>" for m in missed)
    return f"<section id='decision'><h2>Decision</h2><p>{esc(first)}</p><ul>{items}</ul></section>"


def _devices_html(devices: dict[str, list[dict]] | None) -> str:
    if not devices:
        return ""
    esc = html.escape
    head, body = _device_table(devices)
    rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>" for cells in body)
    return (
        "<h2>Measured on each device</h2><table id='devices'><thead><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def _html(
    title, rows, front, results, reference, env, figures, generalisation=None, note="", decision=None, devices=None
) -> str:
    esc = html.escape
    head, body = _table(rows, front, reference["accuracy"]["miou"] if reference and reference["accuracy"] else None)
    table = "<table id='artifacts'><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead><tbody>"
    table += (
        "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>" for cells in body) + "</tbody></table>"
    )

    def figure(key: str, caption: str) -> str:
        if key not in figures:
            return f"<p class='missing'>{esc(caption)}: not available in this run.</p>"
        data = base64.b64encode(figures[key]).decode()
        image = f"<img alt='{esc(caption)}' src='data:image/png;base64,{data}'>"
        return f"<figure id='{key}'>{image}<figcaption>{esc(caption)}</figcaption></figure>"

    environment = (
        "<table id='environment'>"
        + "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in _environment_lines(env))
        + "</table>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}: edgeseg report</title>
<style>
{PAGE_CSS}
.missing {{ color: #a00; }}
</style></head><body>
<h1>{esc(title)}</h1>
{_decision_html(decision)}
<h2>Artifacts</h2>
<p>{esc(_settings_line(results))}</p>
{table}
{f"<p id='not-run'>{esc(note)}</p>" if note else ""}
{_devices_html(devices)}
<h2>Accuracy against latency</h2>
{figure("tradeoff", "val mIoU against p50 latency at batch 1; the Pareto front is the line")}
{_table_html("Frame to class map", END_TO_END_NOTE, "end-to-end", _end_to_end_table(rows))}
{_table_html("Where the time goes", PROFILE_NOTE, "profile", _profile_table(rows))}
{_generalisation_html(generalisation)}
{_robustness_html(rows)}
<h2>Per-class IoU against fp32</h2>
{figure("per_class", "IoU of each class, each artifact minus the fp32 model (points)")}
<h2>Sample predictions</h2>
{figure("samples", "validation images: ground truth, the fp32 model and the fastest artifact")}
<h2>Environment</h2>
{environment}
</body></html>
"""
