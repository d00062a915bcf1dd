"""``edgeseg runs [DIR]`` and ``edgeseg runs --compare A B``: the runs under a directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def runs(
    directory: Annotated[Path, typer.Argument(help="Where runs/<recipe name>/ live.")] = Path("runs"),
    compare: Annotated[
        tuple[str, str] | None,
        typer.Option(help="Two runs (names under DIR, or paths): what changed from the first to the second."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List runs (last build, stages, mIoU, fastest artifact, deployable or rejected), or compare two."""
    from edgeseg.build.runs import compare as diff
    from edgeseg.build.runs import run_dirs, summary
    from edgeseg.errors import EdgesegError

    if compare:
        a, b = (_resolve(directory, name) for name in compare)
        result = diff(a, b)
        typer.echo(json.dumps(result, indent=2) if json_out else _comparison(result))
        return
    found = run_dirs(directory)
    if not found:
        raise EdgesegError(f"{directory}: no runs (a run is a directory with manifest.json, written by edgeseg build)")
    rows = [summary(run) for run in found]
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    _table(rows)


def _resolve(directory: Path, name: str) -> Path:
    from edgeseg.build.runs import MANIFEST, run_dirs
    from edgeseg.errors import EdgesegError
    from edgeseg.registry import did_you_mean

    for candidate in (Path(name), directory / name):
        if (candidate / MANIFEST).is_file():
            return candidate
    known = [p.name for p in run_dirs(directory)]
    hint = did_you_mean(name, known)
    raise EdgesegError(f"--compare {name}: no run there{hint}; runs in {directory}: {', '.join(known) or 'none'}")


def _table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("run", "last build", "stages (ran)", "eval mIoU", "fastest (p50 ms, batch 1)", "deployable")
    for row in rows:
        fastest = row["fastest"]
        table.add_row(
            row["name"],
            row["last_build"] or "-",
            f"{row['stages']} ({row['ran']})",
            "-" if row["miou"] is None else f"{row['miou']:.2f}",
            f"{fastest['name']} ({fastest['p50_ms']:.2f})" if fastest else "-",
            "yes" if row["deployable"] else "rejected: " + ", ".join(row["rejected"]),
        )
    Console().print(table)


def _comparison(result: dict) -> str:
    lines = [f"{result['a']} -> {result['b']}", "recipe:"]
    lines += [f"  {key}: {a!r} -> {b!r}" for key, (a, b) in result["recipe"].items()] or ["  (same)"]
    lines.append("stages whose key changed (they ran on different inputs):")
    lines += [f"  {name}: {a or '-'} -> {b or '-'}" for name, (a, b) in result["stage_keys"].items()] or ["  (none)"]
    a, b = result["eval_miou"]
    lines.append(f"eval mIoU: {a} -> {b}")
    for name, sides in result["artifacts"].items():
        before, after = sides.get("a", {}), sides.get("b", {})
        lines.append(
            f"  {name}: p50 {before.get('p50_ms', '-')} -> {after.get('p50_ms', '-')} ms, "
            f"mIoU {before.get('miou', '-')} -> {after.get('miou', '-')}"
        )
    return "\n".join(lines)
