"""The sweep's summary page: every artifact of every variant, the Pareto front, the decision.

Same style as the build's report (``edgeseg.report``): a table, accuracy against latency with
the front drawn, and the decision first when the recipe has ``select:``.
"""

from __future__ import annotations

import base64
import html

from edgeseg.report.render import PAGE_CSS, _fmt

HEAD = ["artifact", "settings", "format", "precision", "mIoU", "p50 ms", "CV", "peak MB", "size MB", "GMACs"]


def _rows(summary: dict) -> list[list[str]]:
    body = []
    for r in summary["artifacts"]:
        name = r["name"] + (" ★" if r["pareto"] else "") + (" (rejected by gates)" if r["gates_rejected"] else "")
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items())
        cv = None if r["latency_cv"] is None else 100 * r["latency_cv"]
        body.append(
            [
                name,
                settings,
                r["format"],
                r["precision"],
                _fmt(r["miou"]),
                _fmt(r["latency_ms"]),
                _fmt(cv, 1, "%"),
                _fmt(r["peak_mb"], 0),
                _fmt(r["size_mb"]),
                _fmt(r["gmacs"], 3),
            ]
        )
    return body


TRIAL_HEAD = ["trial", "settings", "artifact", "figures", "within limits"]


def _trial_rows(summary: dict) -> list[list[str]]:
    """A search's trials in the order they ran; ★ on the study's Pareto-optimal ones."""
    search = summary["search"]
    best = set(search["best_trials"])
    body = []
    for t in search["trials"]:
        settings = ", ".join(f"{k}={_fmt(v, 4) if isinstance(v, float) else v}" for k, v in t["settings"].items())
        figures = ", ".join(f"{k} {_fmt(v)}" for k, v in (t["values"] or {}).items()) or t["error"] or t["state"]
        feasible = "" if t["feasible"] is None else ("yes" if t["feasible"] else "no")
        body.append(
            [f"{t['number']}{' ★' if t['number'] in best else ''}", settings, t["artifact"] or "", figures, feasible]
        )
    return body


def _search_line(summary: dict) -> str:
    search = summary["search"]
    goals = ", ".join(f"{direction} {name}" for name, direction in search["objectives"].items())
    return (
        f"An Optuna study ({search['sampler']}, {search['study']}) chose the variants: {len(search['trials'])} "
        f"trials of a budget of {search['budget']}, to {goals}; each trial is scored by the artifact select: "
        "would deploy from it."
    )


def _sharing_line(summary: dict) -> str:
    stages, variants = summary["stages"], summary["variants"]
    failed = [v["name"] for v in variants if v["error"]]
    line = (
        f"{len(variants)} variants; their builds hold {stages['in_variants']} stages, of which "
        f"{stages['distinct']} distinct ones were run (the rest shared through the cache)."
    )
    return line + (f" Failed: {', '.join(failed)}." if failed else "")


def _decision_lines(summary: dict) -> list[str]:
    from edgeseg.report.render import _decision_lines

    return _decision_lines(summary["decision"]) if summary.get("decision") else []


def sweep_markdown(summary: dict) -> str:
    lines = [f"# {summary['recipe']}: sweep", ""]
    decision = _decision_lines(summary)
    if decision:
        lines += ["## Decision", "", decision[0], ""] + [f"- {m}" for m in decision[1:]] + [""]
    lines += [
        "## Artifacts (★ Pareto front: no other is both faster and more accurate)",
        "",
        _sharing_line(summary),
        "",
    ]
    lines += _md_table(HEAD, _rows(summary))
    if summary.get("search"):
        lines += ["", "## Search (★ Pareto-optimal trials)", "", _search_line(summary), ""]
        lines += _md_table(TRIAL_HEAD, _trial_rows(summary))
    return "\n".join(lines) + "\n"


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(c) + " |" for c in rows]


def _html_table(table_id: str, head: list[str], rows: list[list[str]]) -> str:
    esc = html.escape
    return (
        f"<table id='{table_id}'><thead><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>" for cells in rows)
        + "</tbody></table>"
    )


def sweep_html(summary: dict) -> str:
    from edgeseg.report import plots

    esc = html.escape
    decision = _decision_lines(summary)
    decision_html = (
        f"<section id='decision'><h2>Decision</h2><p>{esc(decision[0])}</p><ul>"
        + "".join(f"<li>{esc(m)}</li>" for m in decision[1:])
        + "</ul></section>"
        if decision
        else ""
    )
    table = _html_table("artifacts", HEAD, _rows(summary))
    search = (
        f"<section id='search'><h2>Search</h2><p>{esc(_search_line(summary))}</p>"
        f"{_html_table('trials', TRIAL_HEAD, _trial_rows(summary))}</section>"
        if summary.get("search")
        else ""
    )
    plot_rows = [
        {**r, "latency_ms": {"p50": r["latency_ms"]}, "runtime": r.get("runtime", r["format"])}
        | {"rejected": r["gates_rejected"]}
        for r in summary["artifacts"]
    ]
    png = base64.b64encode(plots.accuracy_vs_latency(plot_rows, set(summary["pareto_front"]))).decode()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(summary["recipe"])}: edgeseg sweep</title>
<style>
{PAGE_CSS}
td:nth-child(2) {{ text-align: left; }}
</style></head><body>
<h1>{esc(summary["recipe"])}: sweep</h1>
{decision_html}
<h2>Artifacts</h2>
<p>{esc(_sharing_line(summary))}</p>
{table}
<h2>Accuracy against latency</h2>
<figure id='tradeoff'><img alt='mIoU against p50 latency' src='data:image/png;base64,{png}'>
<figcaption>mIoU against p50 latency at batch 1, every variant's artifacts; the Pareto front is the line</figcaption>
</figure>
{search}
</body></html>
"""
