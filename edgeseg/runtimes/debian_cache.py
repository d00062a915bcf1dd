"""What emulation needs, from Debian's packages, unpacked into a cache directory once, without root.

- ``qemu_from_cache``: ``qemu-user-static`` for this host, where it is not installed.
- ``userland``: an arm64 Python with a runtime's aarch64 wheels, for ``qemu-aarch64-static``.

Packages come from ``apt-get download`` with a private apt state (no root, no ``dpkg
--add-architecture``; apt checks the archive's signatures) and are unpacked with ``dpkg-deb
-x``; wheels come from PyPI. Nothing is installed on the host. Everything lives in
``$EDGESEG_CACHE`` (default ``~/.cache/edgeseg``), one directory per digest of its pins, with a
progress line when it is made.

The runtimes' wheels are at this host's versions, so only the instruction set differs. Pitfall
(measured, benchmarks/README.md "Build here, run there"): onnxruntime 1.28 and later crash at
import under qemu-user (SIGSEGV after reading ``/sys/devices/system/cpu``); 1.27 and older run.
The cause is the cpuinfo library finding no ARM core in ``/proc/cpuinfo``, which qemu 7.2 passes
through from the x86 host. The userland carries an arm64 ``/proc/cpuinfo`` (qemu's ``-L``
prefix serves it), which describes the Cortex-A76 that ``-cpu cortex-a76`` emulates, and 1.32
runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgeseg.errors import DependencyError

DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITE = "bookworm"  # its python3.11 matches the wheels' cp311 tag
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEBIAN_PACKAGES = (
    "python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libssl3 zlib1g libexpat1 libffi8 "
    "libstdc++6 libgcc-s1 libbz2-1.0 liblzma5 libsqlite3-0 libncursesw6 libtinfo6 libreadline8 libuuid1 "
    "libcrypt1 libgomp1"
).split()
CPU = "cortex-a76"  # ARMv8.2 with the int8 dot product (asimddp), no i8mm: phones since 2018, Jetson Orin
CPUINFO = """processor\t: {i}
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x4
CPU part\t: 0xd0b
CPU revision\t: 1

"""
PYTHON = "usr/bin/python3.11"


@dataclass(frozen=True)
class Userland:
    root: Path  # qemu's -L prefix: the unpacked arm64 filesystem
    site: Path  # the wheels, on PYTHONPATH
    python: Path


def cache_dir() -> Path:
    return Path(os.environ.get("EDGESEG_CACHE") or Path.home() / ".cache" / "edgeseg")


def userland(runtime: str) -> Userland:
    """The arm64 userland with ``runtime``'s wheels, assembled on first use (a progress line)."""
    from edgeseg.formats import RUNTIMES

    arm64 = [name for name, r in RUNTIMES.items() if "arm64" in r.emulated_on]
    if runtime not in arm64:
        raise DependencyError(f"{runtime} cannot run under arm64 emulation here (arm64 runs: {', '.join(arm64)})")
    wheels = _pinned(("numpy", RUNTIMES[runtime].package))
    pins = (*DEBIAN_PACKAGES, *wheels, DEBIAN_SUITE, CPUINFO)
    home = _cached(
        f"arm64-{runtime}",
        pins,
        lambda staging: _assemble(staging, wheels),
        f"an arm64 Python with {', '.join(wheels)}",
    )
    return Userland(home / "root", home / "site", home / "root" / PYTHON)


def qemu_from_cache(binary: str) -> Path | None:
    """``binary`` (e.g. ``qemu-x86_64-static``) from Debian's ``qemu-user-static`` for this host,
    unpacked into the cache; None where this host has no apt (then the caller names the install)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        return None
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip() or "amd64"

    def assemble(staging: Path) -> None:
        for deb in _download_debs(staging / "debs", arch, ["qemu-user-static"]):
            _run(["dpkg-deb", "-x", str(deb), str(staging / "root")], "dpkg-deb")
        shutil.rmtree(staging / "debs")
        keep = {f"qemu-{machine}-static" for machine in ("x86_64", "aarch64")}  # 2 of its 30 emulators
        for path in (staging / "root").rglob("*"):
            if path.is_file() and path.name not in keep:
                path.unlink()

    home = _cached(f"qemu-{arch}", ("qemu-user-static", arch, DEBIAN_SUITE), assemble, "qemu-user-static")
    found = home / "root" / "usr" / "bin" / binary
    return found if found.is_file() else None


def _cached(kind: str, pins: tuple[str, ...], assemble, what: str) -> Path:
    """``<cache>/<kind>-<digest of pins>``, made by ``assemble(staging)`` under a lock the first time."""
    import fcntl

    home = cache_dir() / f"{kind}-{hashlib.sha256(' '.join(pins).encode()).hexdigest()[:12]}"
    if (home / "complete").is_file():
        return home
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f".{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second build waits for the first one's assembly
        if not (home / "complete").is_file():
            print(f"edgeseg: assembling {what} in {home} (once)", file=sys.stderr)
            staging = home.with_name(home.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            assemble(staging)
            (staging / "complete").write_text("\n".join(pins) + "\n")
            shutil.rmtree(home, ignore_errors=True)
            staging.rename(home)
    return home


def _pinned(distributions: tuple[str, ...]) -> tuple[str, ...]:
    """Each distribution at this host's version: the emulated run differs in instruction set only."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return tuple(f"{name}=={version(name)}" for name in distributions)
    except PackageNotFoundError as exc:
        raise DependencyError(f"{exc.name} is not installed here, so its arm64 twin cannot be chosen") from None


def _assemble(staging: Path, wheels: tuple[str, ...]) -> None:
    for deb in _download_debs(staging / "debs", "arm64", DEBIAN_PACKAGES):
        _run(["dpkg-deb", "-x", str(deb), str(staging / "root")], "dpkg-deb")
    _download_wheels(staging / "wheels", wheels)
    for wheel in sorted((staging / "wheels").glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(staging / "site")
    (staging / "root" / "proc").mkdir()
    (staging / "root" / "proc" / "cpuinfo").write_text("".join(CPUINFO.format(i=i) for i in range(4)))
    shutil.rmtree(staging / "debs")
    shutil.rmtree(staging / "wheels")


def _download_debs(into: Path, arch: str, packages) -> list[Path]:
    """``apt-get download`` of ``packages`` for ``arch``, with an apt state of its own under ``into``."""
    state = into / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "etc/apt.conf.d", "etc/preferences.d"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "status").touch()
    sources = state / "sources.list"
    mirror = os.environ.get("EDGESEG_DEBIAN_MIRROR", DEBIAN_MIRROR)
    sources.write_text(f"deb [arch={arch} signed-by={DEBIAN_KEYRING}] {mirror} {DEBIAN_SUITE} main\n")
    options = [
        f"-oDir::State={state}",
        f"-oDir::State::status={state / 'status'}",
        f"-oDir::Cache={state / 'cache'}",
        f"-oDir::Etc::SourceList={sources}",
        f"-oDir::Etc::SourceParts={state / 'etc'}",
        f"-oDir::Etc::Parts={state / 'etc' / 'apt.conf.d'}",
        f"-oDir::Etc::PreferencesParts={state / 'etc' / 'preferences.d'}",
        f"-oAPT::Architecture={arch}",
        f"-oAPT::Architectures={arch}",
        "-oDebug::NoLocking=1",
        "-oAPT::Sandbox::User=root" if os.geteuid() == 0 else "-oAPT::Sandbox::User=" + _user(),
        "-qq",
    ]
    _run(["apt-get", *options, "update"], "apt-get")
    _run(["apt-get", *options, "download", *(f"{p}:{arch}" for p in packages)], "apt-get", cwd=into)
    return sorted(into.glob("*.deb"))


def _download_wheels(into: Path, wheels: tuple[str, ...]) -> None:
    platforms = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    command += [f"--platform={p}" for p in platforms]
    command += ["--python-version=3.11", "--implementation=cp", "-d", str(into), *wheels]
    _run(command, "pip")


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def _run(command: list[str], tool: str, cwd: Path | None = None) -> None:
    if shutil.which(command[0]) is None and not Path(command[0]).is_file():
        raise DependencyError(
            f"emulation needs {tool} (Debian's apt and dpkg) to fetch its packages; run it on a Debian or Ubuntu host"
        )
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise DependencyError(
            f"fetching what emulation needs: {tool} failed: {lines[-1] if lines else done.returncode}"
        )
