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
    lines += ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _rows(summary)]
    return "\n".join(lines) + "\n"


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
    table = (
        "<table id='artifacts'><thead><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in HEAD)
        + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>" for cells in _rows(summary))
        + "</tbody></table>"
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
</body></html>
"""
