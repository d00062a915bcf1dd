"""The build's report: ``metrics.json``, ``report.md`` and a self-contained ``report.html``.

This face re-exports the package's entry points; the logic lives in ``render``.
"""

from __future__ import annotations

from edgeseg.report.render import (
    METRICS_SCHEMA,
    PAGE_CSS,
    ROBUSTNESS_NOTE,
    artifact_rows,
    batch1,
    generalisation_summary,
    pareto_front,
    prediction_file,
    robustness_row,
    write_report,
)

__all__ = [
    "METRICS_SCHEMA",
    "PAGE_CSS",
    "ROBUSTNESS_NOTE",
    "artifact_rows",
    "batch1",
    "generalisation_summary",
    "pareto_front",
    "prediction_file",
    "robustness_row",
    "write_report",
]
