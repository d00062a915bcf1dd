"""``edgeseg --version --verbose``: what a bug report needs to say about the installation."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

from edgeseg import __version__
from edgeseg.bench.environment import cpu_flags, cpu_model
from edgeseg.versions import declared_dependencies


def version_report() -> str:
    """``edgeseg --version --verbose``: Python, platform, CPU flags and the installed version of
    every declared dependency, so a bug report says what ran (compare with constraints.txt)."""
    lines = [
        f"edgeseg {__version__}",
        f"python {platform.python_version()} ({sys.executable})",
        f"platform {platform.platform()}",
        f"cpu {cpu_model()} ({', '.join(cpu_flags()) or 'no flags read'})",
    ]
    dependencies = declared_dependencies()
    width = max(len(name) for name, _ in dependencies)
    for name, extra in dependencies:
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        lines.append(f"  {name:<{width}}  {installed:<14} [{extra}]")
    return "\n".join(lines)
