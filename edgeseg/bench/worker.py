"""``python -m edgeseg.bench.worker SPEC.json RESULT.json``: one measurement in a fresh process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edgeseg.bench.measure import BenchSpec, measure


def main(argv: list[str]) -> int:
    request, answer = Path(argv[0]), Path(argv[1])
    raw = json.loads(request.read_text())
    spec = BenchSpec(**{**raw, "batches": tuple(raw["batches"])})
    try:
        result = measure(spec)
    except Exception as exc:  # the parent reports the last stderr line
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    answer.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
