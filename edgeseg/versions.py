"""Installed versions of edgeseg and the libraries a result depends on (torch-free).

One helper for every place that records versions: cache keys, checkpoints, bundles and the
benchmark environment all read them the same way, from the installed distributions.
"""

from __future__ import annotations

from importlib import metadata


def package_versions(names: tuple[str, ...] | list[str]) -> dict[str, str]:
    """edgeseg's own version and the installed versions of the distributions ``names``
    (missing ones left out)."""
    from edgeseg import __version__

    versions = {"edgeseg": __version__}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
