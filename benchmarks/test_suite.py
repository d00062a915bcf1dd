"""How long the test suite takes, and where the time goes: a pytest run recorded with its host.

    .venv/bin/python benchmarks/test_suite.py "full suite as CI runs it" -- -n 2 --dist loadfile
    .venv/bin/python benchmarks/test_suite.py "fast tier" -- -m "not slow"
    .venv/bin/python benchmarks/test_suite.py "baseline" --junit /tmp/base.xml --wall 925.9

Runs pytest with the arguments after ``--`` (or reads a JUnit XML an earlier run wrote, with its
wall time), and adds one entry under ``runs`` of results/test_suite.json: the command, passed,
skipped and failed counts, the wall time, the test seconds per file (heaviest first: the figures
tests/conftest.py's HEAVIEST_FIRST orders by) and the host (CPU model and flags). Run nothing
else meanwhile: the figure is the host's, not the host's share.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from edgeseg.bench.environment import environment

RESULTS = Path(__file__).parent / "results" / "test_suite.json"


def summarise(junit: Path) -> dict:
    """Counts and per-file seconds from pytest's JUnit XML."""
    root = ET.parse(junit).getroot()
    per_file: Counter[str] = Counter()
    counts = Counter()
    for case in root.iter("testcase"):
        per_file[case.get("classname", "").rsplit(".", 1)[-1] + ".py"] += float(case.get("time", 0))
        outcome = next((child.tag for child in case if child.tag in ("skipped", "failure", "error")), "passed")
        counts[outcome] += 1
    return {
        "passed": counts["passed"],
        "skipped": counts["skipped"],
        "failed": counts["failure"] + counts["error"],
        "test_seconds": round(sum(per_file.values()), 1),
        "seconds_per_file": {name: round(s, 1) for name, s in per_file.most_common(12)},
    }


def run_pytest(args: list[str], junit: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", *args, f"--junitxml={junit}", "-q", "-p", "no:cacheprovider"])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    ours, pytest_args = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("label", help="the run's name in results/test_suite.json")
    parser.add_argument("--junit", type=Path, help="a JUnit XML an earlier pytest run wrote (needs --wall)")
    parser.add_argument("--wall", type=float, help="that run's wall time in seconds")
    parser.add_argument("--command", help="that run's command line, as recorded")
    args = parser.parse_args(ours)
    if args.junit:
        if args.wall is None:
            parser.error("--junit needs --wall (the run's wall-clock seconds)")
        junit, wall, command = args.junit, args.wall, args.command or "pytest (an earlier run)"
    else:
        junit = Path(tempfile.mkdtemp()) / "junit.xml"
        wall, command = run_pytest(pytest_args, junit), " ".join(["pytest", *pytest_args])
    entry = {"command": command, "wall_s": round(wall, 1), **summarise(junit), "environment": environment()}
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"benchmark": "test_suite", "runs": {}}
    results["runs"][args.label] = entry
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: v for k, v in entry.items() if k != "environment"}, indent=1))
    return entry


if __name__ == "__main__":
    main()
