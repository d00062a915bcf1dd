"""benchmarks/README.md opens with a table of claims; every figure there is its results file's."""

from __future__ import annotations

import json
import re

import pytest

from conftest import REPO

README = REPO / "benchmarks" / "README.md"
RESULTS = REPO / "benchmarks" / "results"


def _rows() -> list[dict]:
    text = README.read_text().split("## The claims, their figures and where they come from", 1)[1]
    lines = [line for line in text.split("\n## ", 1)[0].splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True)) for line in lines[2:]]
    assert len(rows) >= 10, "the summary table lost its rows"
    return rows


def _at(document, path: str):
    node = document
    for part in path.strip("`").split("/"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _host_matches(environment: dict, host: str) -> bool:
    family, _, isa = host.partition(", ")
    flags = set(environment.get("cpu_flags", []))
    isa_ok = {"VNNI": "avx512_vnni" in flags, "AMX": "amx_tile" in flags, "AVX2 only": "avx512f" not in flags}[isa]
    return family in environment.get("cpu", "") and isa_ok


@pytest.mark.parametrize("row", _rows(), ids=lambda row: f"{row['results file']}:{row['JSON path']}"[:80])
def test_every_summary_figure_is_the_one_in_its_results_file(row):
    document = json.loads((RESULTS / row["results file"]).read_text())
    value = _at(document, row["JSON path"])
    printed = row["figure"]
    decimals = len(printed.partition(".")[2])
    recorded = f"{value:+.{decimals}f}" if printed.startswith("+") else f"{value:.{decimals}f}"
    assert recorded == printed, f"{row['claim']}: README says {printed}, {row['results file']} has {value}"
    assert re.fullmatch(r"\d+[a-z]?", row["section"]) and f"## {row['section'].rstrip('abcde')}." in README.read_text()
    assert _host_matches(document["environment"], row["host"]), (
        f"{row['results file']} ran on {document['environment']}"
    )
