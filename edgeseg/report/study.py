"""The transfer study's page: a table of mIoU per arm and data fraction (mean ± std over seeds),
mIoU against data fraction per arm, and mIoU against training wall time per arm, in the
build report's style."""

from __future__ import annotations

import base64
import html

from edgeseg.report.plots import _png, _pyplot
from edgeseg.report.render import PAGE_CSS, _fmt


def _cell(summary: dict, arm: str, fraction: float) -> dict | None:
    return next((c for c in summary["table"] if c["arm"] == arm and c["fraction"] == fraction), None)


def study_table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """Rows: arms; columns: fractions; cells: mean mIoU ± std (seeds)."""
    head = ["arm", *(f"{f:g} of train" for f in summary["fractions"])]
    body = []
    for arm, label in summary["arms"].items():
        cells = [f"{arm}: {label}"]
        for fraction in summary["fractions"]:
            c = _cell(summary, arm, fraction)
            if c is None:
                cells.append("–")
            else:
                spread = "" if c["std"] is None else f" ± {c['std']:.2f}"
                cells.append(f"{c['mean']:.2f}{spread} (n={c['seeds']})")
        body.append(cells)
    return head, body


def study_plots(summary: dict) -> dict[str, bytes]:
    """``by_fraction``: mean mIoU (error bars: std over seeds) against the data fraction, per arm;
    ``by_time``: each run's validation mIoU against its training wall time, per arm."""
    plt = _pyplot()
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, arm in enumerate(summary["arms"]):
        cells = sorted((c for c in summary["table"] if c["arm"] == arm), key=lambda c: c["fraction"])
        if cells:
            errors = [c["std"] or 0.0 for c in cells]
            x, y = [c["fraction"] for c in cells], [c["mean"] for c in cells]
            ax.errorbar(x, y, yerr=errors, marker="o", capsize=3, color=colours(i % 10), label=arm)
    ax.set_xscale("log")
    ax.set_xlabel("fraction of the training data (log scale)")
    ax.set_ylabel(f"mIoU on {summary['split']}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    by_fraction = _png(fig)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, arm in enumerate(summary["arms"]):
        runs = [r for r in summary["runs"] if r["arm"] == arm and r.get("curve")]
        for j, run in enumerate(runs):
            curve = run["curve"]
            label = arm if j == 0 else None
            style = "-" if run["fraction"] == max(summary["fractions"]) else ":"
            t = [p["elapsed_s"] / 60 for p in curve]
            ax.plot(t, [p["miou"] for p in curve], style, color=colours(i % 10), alpha=0.8, label=label)
    ax.set_xlabel("training wall time (min); solid: the largest fraction")
    ax.set_ylabel("validation mIoU (selection split)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return {"by_fraction": by_fraction, "by_time": _png(fig)}


def _runs_table(summary: dict) -> tuple[list[str], list[list[str]]]:
    head = ["arm", "fraction", "seed", "mIoU", "epochs", "train min", "img/s", "error"]
    body = [
        [
            r["arm"],
            f"{r['fraction']:g}",
            str(r["seed"]),
            _fmt(r["miou"]),
            _fmt(r["epochs"]),
            _fmt(None if r["train_s"] is None else r["train_s"] / 60, 1),
            _fmt(r.get("images_per_s"), 1),
            r["error"] or "",
        ]
        for r in summary["runs"]
    ]
    return head, body


def study_markdown(summary: dict) -> str:
    lines = [f"# {summary['recipe']}: transfer study", "", summary["split_note"], ""]
    for head, body in (study_table(summary), _runs_table(summary)):
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body] + [""]
    return "\n".join(lines)


def _html_table(table_id: str, head: list[str], body: list[list[str]]) -> str:
    esc = html.escape
    rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>" for cells in body)
    return (
        f"<table id='{table_id}'><thead><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def study_html(summary: dict, plots: dict[str, bytes]) -> str:
    esc = html.escape
    figures = "".join(
        f"<figure id='{key}'><img alt='{key}' src='data:image/png;base64,{base64.b64encode(png).decode()}'></figure>"
        for key, png in plots.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(summary["recipe"])}: transfer study</title>
<style>
{PAGE_CSS}
</style></head><body>
<h1>{esc(summary["recipe"])}: transfer study</h1>
<p>{esc(summary["split_note"])}. mIoU is the mean over seeds ± their standard deviation.</p>
{_html_table("study", *study_table(summary))}
{figures}
<h2>Every run</h2>
{_html_table("runs", *_runs_table(summary))}
</body></html>
"""
