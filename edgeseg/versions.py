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


def declared_dependencies() -> list[tuple[str, str]]:
    """(distribution, extra) for every requirement edgeseg's installed metadata declares: the
    core's (extra "core") and each extra's, in pyproject order, from the one list in pyproject.toml."""
    import re

    found = []
    for requirement in metadata.requires("edgeseg") or ():
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group(0)
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
        if name.lower() != "edgeseg":  # the `all` extra names edgeseg's own extras
            found.append((name, extra.group(1) if extra else "core"))
    return found
