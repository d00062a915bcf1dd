"""The lock (constraints.txt): every declared dependency pinned, every pin what is installed."""

from __future__ import annotations

import re
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from edgeseg.versions import declared_dependencies

from conftest import REPO

LOCK = REPO / "constraints.txt"
UNLOCKED_EXTRAS = {"tensorrt"}  # installs only on the GPU machine; CI cannot pass with it


def _pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version.strip(), f"constraints.txt: '{line}' is not an exact pin (name==version)"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_the_lock_pins_every_extra_within_its_declared_range():
    pins = _pins()
    extras: dict[str, set[str]] = {}
    for name, extra in declared_dependencies():
        extras.setdefault(canonicalize_name(name), set()).add(extra)
    assert {"core", "bench", "train", "dev", "tensorrt"} <= set().union(*extras.values())
    for text in metadata.requires("edgeseg"):
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name == "edgeseg" or extras[name] <= UNLOCKED_EXTRAS:
            continue
        assert name in pins, f"{requirement.name} ({text}) is not in constraints.txt: bash .ci/lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} vs {text}"


def test_what_is_installed_is_what_the_lock_says():
    """CI installs through the lock; an environment that drifted from it says which package."""
    import sysconfig

    # what pip installed into the environment, not what a library put first on sys.path (Ray
    # prepends its own vendored psutil once it is imported in this process)
    site = list(dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib")))
    drifted = []
    for name, version in _pins().items():
        found = next(iter(metadata.distributions(name=name, path=site)), None)
        if found is None:
            continue
        installed = found.version
        if installed != version:
            drifted.append(f"{name} {installed} (lock {version})")
    assert not drifted, f"installed versions differ from constraints.txt: {drifted}"


def test_version_verbose_lists_every_declared_dependency():
    from typer.testing import CliRunner

    from edgeseg.cli import app

    result = CliRunner().invoke(app, ["--version", "--verbose"])
    assert result.exit_code == 0, result.output
    for name, extra in declared_dependencies():
        installed = metadata.version(name) if extra not in UNLOCKED_EXTRAS else "(not installed|\\S+)"
        assert re.search(rf"^\s+{re.escape(name)}\s+{installed}\s+\[{extra}\]$", result.output, re.M), name
