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
    log_to_mlflow: Annotated[
        str | None,
        typer.Option(
            "--log-to-mlflow",
            help="Log this finished run (a name under DIR) to MLflow now: for a build whose tracking server "
            "did not answer.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(min=1, help="With --log-to-mlflow: seconds to wait for the tracking store in all."),
    ] = 300.0,
) -> None:
    """List runs (last build, stages, mIoU, fastest artifact, deployable or rejected), or compare two."""
    from edgeseg.build.runs import compare as diff
    from edgeseg.build.runs import run_dirs, summary
    from edgeseg.errors import EdgesegError

    if log_to_mlflow:
        from edgeseg.build.tracking import log_finished_run

        run_id = log_finished_run(_resolve(directory, log_to_mlflow, "--log-to-mlflow"), timeout)
        typer.echo(f"logged {log_to_mlflow} as MLflow run {run_id}")
        return
    if compare:
        a, b = (_resolve(directory, name, "--compare") for name in compare)
        result = diff(a, b)
        typer.echo(json.dumps(result, indent=2) if json_out else _comparison(result))
        return
    found = run_dirs(directory)
    if not found:
        raise EdgesegError(f"{directory}: no runs (a run is a directory with manifest.json, written by edgeseg build)")
    rows = []
    for run in found:
        try:
            rows.append(summary(run))
        except EdgesegError as exc:  # one broken run does not hide the others
            typer.echo(f"skipped {exc}", err=True)
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    _table(rows)


def _resolve(directory: Path, name: str, option: str) -> Path:
    from edgeseg.build.runs import MANIFEST, run_dirs
    from edgeseg.errors import EdgesegError
    from edgeseg.registry import did_you_mean

    for candidate in (directory / name, Path(name)):  # DIR's run first, then a path as given
        if (candidate / MANIFEST).is_file():
            return candidate
    known = [p.name for p in run_dirs(directory)]
    hint = did_you_mean(name, known)
    raise EdgesegError(f"{option} {name}: no run there{hint}; runs in {directory}: {', '.join(known) or 'none'}")


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
