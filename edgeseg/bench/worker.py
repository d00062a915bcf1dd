"""``python -m edgeseg.bench.worker SPEC.json RESULT.json``: one measurement in a fresh process.

Progress goes to stdout as JSON lines ``{"done": k, "total": n}`` for the parent's bar; the
result goes to RESULT.json. A failure writes ``{"error": {"kind", "message"}}`` there instead,
so the parent raises the same kind of error with its exit code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edgeseg.bench.measure import BenchSpec, measure


def main(argv: list[str]) -> int:
    request, answer = Path(argv[0]), Path(argv[1])
    raw = json.loads(request.read_text())
    spec = BenchSpec(**{**raw, "batches": tuple(raw["batches"]), "emulate": tuple(raw.get("emulate", ()))})
    try:
        result = measure(
            spec, on_progress=lambda done, total: print(json.dumps({"done": done, "total": total}), flush=True)
        )
    except Exception as exc:  # the parent re-raises it as the same EdgesegError kind
        from edgeseg.errors import EdgesegError

        known = isinstance(exc, EdgesegError)
        message = str(exc) if known else f"{type(exc).__name__}: {exc}"
        answer.write_text(json.dumps({"error": {"kind": type(exc).__name__ if known else None, "message": message}}))
        print(message, file=sys.stderr)
        return 1
    answer.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
