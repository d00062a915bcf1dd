"""``python -m edgeseg.runtimes.emulated ARTIFACT RUNTIME THREADS``: the far side of ``EmulatedSession``.

Runs under qemu, so it imports as little as it can: numpy and the one runtime (no torch, no
pydantic). Protocol on stdin/stdout, frames of ``<u64 length><payload>``: first a JSON hello
(the input spec and session facts, or ``{"error": ...}``), then one ``.npy`` answer per
``.npy`` batch until stdin closes.
"""

from __future__ import annotations

import json
import os
import sys
from io import BytesIO

import numpy as np

from edgeseg.runtimes.emulate import _read_frame, _write_frame


def main(argv: list[str]) -> int:
    artifact, runtime, threads = argv[0], argv[1], int(argv[2])
    # The protocol keeps the real stdout; anything a runtime prints goes to stderr instead.
    out, inp = os.fdopen(os.dup(1), "wb"), sys.stdin.buffer
    os.dup2(2, 1)
    try:
        from edgeseg.runtimes.session import open_session

        session = open_session(artifact, runtime, threads=threads)
    except Exception as exc:  # the parent raises it with the artifact's name
        _write_frame(out, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        return 1
    hello = {
        "input": {"name": session.input.name, "shape": list(session.input.shape), "dtype": session.input.dtype},
        "precision": session.info.precision,
        "details": {k: v for k, v in session.info.details.items() if k != "providers"},
    }
    _write_frame(out, json.dumps(hello).encode())
    while (frame := _read_frame(inp)) is not None:
        result = session.run(np.load(BytesIO(frame), allow_pickle=False))
        buffer = BytesIO()
        np.save(buffer, np.asarray(result), allow_pickle=False)
        _write_frame(out, buffer.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
