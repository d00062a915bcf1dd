"""Run a script with torch, torchvision, nncf, timm and edgeseg made unimportable.

    python tests/no_torch.py SCRIPT [ARGS...]

Proves the deployment kit works where only numpy, Pillow and a runtime are installed.
"""

import runpy
import sys

FORBIDDEN = {"torch", "torchvision", "nncf", "timm", "edgeseg"}


class _Forbid:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError(f"{name} must not be needed here")
        return None


sys.meta_path.insert(0, _Forbid())
script, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_path(script, run_name="__main__")
leaked = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
if leaked:
    raise SystemExit(f"imported anyway: {leaked}")
