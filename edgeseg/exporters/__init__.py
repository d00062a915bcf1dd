"""Exporters: an edgeseg checkpoint -> a verified, self-describing artifact bundle.

This face re-exports the package's entry points; the logic lives in ``export``.
"""

from __future__ import annotations

from edgeseg.exporters.export import (
    check_toolchains,
    export_bundle,
    export_checkpoint,
    library_versions,
    log,
    prepare_job,
)

__all__ = ["check_toolchains", "export_bundle", "export_checkpoint", "library_versions", "log", "prepare_job"]
