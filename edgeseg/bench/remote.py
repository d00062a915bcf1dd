"""Bench on the device the model will run on, over SSH.

The system ``ssh`` does the work, so the user's keys, agent and ``~/.ssh/config`` apply and no
password is ever asked for or stored (``BatchMode=yes``: a key that is refused fails at once).
One bench on a device is five steps, each one SSH command:

1. probe: the device's ``edgeseg --version`` must be this one (else: the install command);
2. a fresh work directory (``mktemp -d``) on the device;
3. upload: one tar stream of the bundles and, to score accuracy, the evaluation images written
   as a ``folder`` dataset with its small recipe, so the device decodes the same pixels;
4. ``edgeseg bench`` there, its progress streamed here;
5. the JSON back (written here atomically), and the work directory removed.

Every failure is an error with an exit code (see ``edgeseg.errors``): unreachable host,
refused authentication, a full disk on the device, edgeseg or a runtime missing there. Nothing
local is written before the results are complete.
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeseg import __version__
from edgeseg.errors import (
    DependencyError,
    DeviceAuthError,
    DeviceUnreachableError,
    EdgesegError,
    ExportError,
    RemoteError,
    StorageError,
)
from edgeseg.limits import limit

CONNECT_TIMEOUT_S = 15
UNREACHABLE = (
    "connection refused",
    "could not resolve hostname",
    "connection timed out",
    "operation timed out",
    "no route to host",
    "network is unreachable",
    "connection closed by",
    "connection reset",
)
# What tar and the shell print when the device refuses a write: ENOSPC, EDQUOT, EFBIG, or GNU
# tar's "Wrote only N of M bytes" for the short write a filling disk gives first.
# The scoring images are a plain folder split on the device, whatever they are here (a recipe's
# validation fold, "fold", means something else to a folder dataset).
DEVICE_SPLIT = "val"
DISK_FULL = ("no space left on device", "disk quota exceeded", "file too large", "wrote only")


@dataclass(frozen=True)
class Device:
    """Where to bench: ``host`` is ``[user@]host[:port]`` or an SSH config alias."""

    name: str
    host: str
    edgeseg: str = "edgeseg"
    ssh_config: str | None = None
    workdir: str | None = None

    @classmethod
    def parse(cls, text: str, **kw) -> Device:
        return cls(name=kw.pop("name", None) or text.split("@")[-1].split(":")[0], host=text, **kw)

    def ssh_command(self) -> list[str]:
        destination, _, port = self.host.rpartition(":") if _has_port(self.host) else (self.host, "", "")
        command = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}"]
        command += ["-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]  # a device that dies mid-bench
        if self.ssh_config:
            command += ["-F", self.ssh_config]
        if port:
            command += ["-p", port]
        return [*command, "--", destination]


def _has_port(host: str) -> bool:
    tail = host.rpartition(":")[2]
    return ":" in host and tail.isdigit()


def bench_options(
    *,
    iterations: int,
    warmup: int,
    rounds: int,
    batches=(),
    threads: int | None = None,
    time_budget: float | None = None,
    runtimes=(),
    device: str = "cpu",
) -> list[str]:
    """Timing settings as the options of the device's own ``edgeseg bench``."""
    args = ["--device", device, "--iterations", str(iterations), "--warmup", str(warmup), "--rounds", str(rounds)]
    args += [a for b in batches for a in ("--batch", str(b))]
    args += [a for rt in runtimes for a in ("--runtime", rt)]
    if threads is not None:
        args += ["--threads", str(threads)]
    if time_budget is not None:
        args += ["--time-budget", str(time_budget)]
    return args


def install_hint() -> str:
    return f'pip install "edgeseg[bench]=={__version__}"'


def run(device: Device, script: str, *, stdin: bytes | None = None, what: str) -> str:
    """Run ``script`` in the device's shell; its stdout, or the failure as an edgeseg error."""
    proc = subprocess.run([*device.ssh_command(), script], input=stdin, capture_output=True, timeout=None, check=False)
    if proc.returncode != 0:
        raise classify(device, proc.returncode, proc.stderr.decode(errors="replace"), what)
    return proc.stdout.decode(errors="replace")


def classify(device: Device, code: int, stderr: str, what: str) -> EdgesegError:
    """ssh's and the device's failure as the error a person can act on."""
    text = stderr.strip()
    lower = text.lower()
    last = text.splitlines()[-1] if text else f"exit status {code}"
    where = f"{device.name} ({device.host})"
    if "permission denied" in lower and code == 255:
        return DeviceAuthError(
            f"{where}: authentication failed ({last}); edgeseg uses your SSH keys and never asks for a password: "
            "load the key (ssh-add) or name it as IdentityFile in ~/.ssh/config"
        )
    if "host key verification failed" in lower:
        return DeviceAuthError(f"{where}: host key verification failed; connect once with ssh to accept its key")
    if code == 255 and any(s in lower for s in UNREACHABLE):
        return DeviceUnreachableError(f"{where}: unreachable while {what} ({last})")
    if any(s in lower for s in DISK_FULL):
        return StorageError(
            f"{where}: the device's disk is full while {what} ({last}); free space there or set "
            "bench.remote[].workdir to a larger disk (nothing local was changed)"
        )
    if code == 255:
        return DeviceUnreachableError(f"{where}: ssh failed while {what} ({last})")
    return RemoteError(f"{where}: {what} failed with exit status {code}: {last}")


def probe(device: Device) -> dict:
    """The device's edgeseg version; refuses a device without edgeseg or with another version."""
    edgeseg = shlex.quote(device.edgeseg)
    out = run(
        device,
        f"command -v {edgeseg} >/dev/null 2>&1 || {{ echo missing; exit 0; }}; {edgeseg} --version; uname -m",
        what="checking edgeseg on the device",
    ).split()
    if not out or out[0] == "missing":
        raise DependencyError(
            f"{device.name} ({device.host}): {device.edgeseg} is not installed there; on the device run  "
            f"{install_hint()}  (or name its path: --remote-edgeseg / bench.remote[].edgeseg)"
        )
    version = out[0]
    if version != __version__:
        raise DependencyError(
            f"{device.name} ({device.host}): the device has edgeseg {version}, this machine {__version__}; "
            f"the figures would not be comparable: on the device run  {install_hint()}"
        )
    return {"edgeseg": version, "machine": out[1] if len(out) > 1 else None}


def scoring_set(data: dict, split: str, seed: int, max_images: int | None) -> tuple[bytes, dict]:
    """The evaluation images as a ``folder`` dataset (lossless PNGs) and the data spec that reads it."""
    from PIL import Image

    from edgeseg.data import dataset_info, load_split
    from edgeseg.recipe import DataSpec

    spec = DataSpec.model_validate(data)
    samples = load_split(spec, split, seed, arrays=True)
    count = len(samples.images) if max_images is None else min(max_images, len(samples.images))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for i in range(count):
            stem = f"{i:05d}"  # keeps the order the local bench scores in
            for kind, array in (("images", samples.images[i]), ("masks", samples.masks[i])):
                png = io.BytesIO()
                Image.fromarray(array).save(png, format="PNG")
                _add(tar, f"data/{DEVICE_SPLIT}/{kind}/{stem}.png", png.getvalue())
    remote_data = {
        "dataset": "folder",
        "root": "data",
        "class_names": list(dataset_info(spec).class_names),
        "ignore_index": spec.ignore_index,
    }
    return buffer.getvalue(), remote_data


def _add(tar: tarfile.TarFile, name: str, content: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    tar.addfile(info, io.BytesIO(content))


def upload_archive(bundles: dict[str, Path], scoring: tuple[bytes, dict] | None) -> bytes:
    """One tar of ``bundles/<name>/`` and the scoring set with ``recipe.yaml``."""
    import yaml

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, bundle in bundles.items():
            for path in sorted(bundle.rglob("*")):
                if path.is_file() and path.name not in ("stage.json", "KEY"):
                    tar.add(path, arcname=f"bundles/{name}/{path.relative_to(bundle)}")
        if scoring is not None:
            data_tar, data = scoring
            with tarfile.open(fileobj=io.BytesIO(data_tar)) as images:
                for member in images.getmembers():
                    tar.addfile(member, images.extractfile(member))
            recipe = {"name": "remote-scoring", "data": data}
            _add(tar, "recipe.yaml", yaml.safe_dump(recipe).encode())
    return buffer.getvalue()


def bench_on_device(
    device: Device,
    bundles: dict[str, Path],
    bench_args: list[str],
    *,
    scoring: tuple[bytes, dict] | None = None,
    split: str = "val",
    on_line: Callable[[str], None] = print,
) -> dict:
    """Bench ``bundles`` (name -> local bundle directory) on ``device``; its bench JSON.

    ``bench_args`` are ``edgeseg bench`` options (timing settings). Each result gets ``device``
    (the name) and its local bundle path; the environment is the device's own.
    """
    facts = probe(device)
    parent = shlex.quote(device.workdir or "/tmp")
    workdir = run(
        device, f"mkdir -p {parent} && mktemp -d {parent}/edgeseg-bench.XXXXXX", what="creating a work directory"
    ).strip()
    quoted = shlex.quote(workdir)
    try:
        archive = upload_archive(bundles, scoring)
        _check_space(device, quoted, len(archive))
        run(device, f"tar -C {quoted} -xf -", stdin=archive, what="copying the bundles to the device")
        args = [*(f"bundles/{name}" for name in bundles), *bench_args, "--json", "result.json"]
        if scoring is not None:
            args += ["--recipe", "recipe.yaml", "--split", DEVICE_SPLIT]
        _stream(device, f"cd {quoted} && {shlex.quote(device.edgeseg)} bench {shlex.join(args)}", on_line)
        most = limit("remote_result_bytes")
        reply = run(device, f"head -c {most + 1} {quoted}/result.json", what="reading the results")
        result = checked_result(device, reply, len(bundles))
    finally:
        _cleanup(device, quoted)
    for entry, (name, bundle) in zip(result["results"], bundles.items(), strict=True):
        entry["name"] = name
        entry["device"] = device.name
        entry["artifact"]["path"] = str(bundle)
        entry["settings"]["split"] = split  # the images are this machine's split, whatever the device calls them
        if entry["accuracy"]:
            entry["accuracy"]["split"] = split
    result["device"] = {"name": device.name, "host": device.host, **facts}
    return result


def checked_result(device: Device, reply: str, expected: int) -> dict:
    """The device's result.json, trusted only once it is a bench document of ``expected`` results:
    bounded in bytes, valid JSON, valid against ``bench.schema.json``.

    Raises:
        RemoteError: one line naming the device and what is wrong (exit 12).
    """
    import jsonschema

    where, most = f"{device.name} ({device.host}): result.json", limit("remote_result_bytes")
    if len(reply) > most:
        raise RemoteError(f"{where}: more than {most:,} bytes (limit remote_result_bytes); not a bench result")
    try:
        result = json.loads(reply)
    except (ValueError, RecursionError) as exc:
        raise RemoteError(f"{where}: not JSON ({str(exc)[:200]})") from None
    schema = json.loads((Path(__file__).parents[1] / "schemas" / "bench.schema.json").read_text())
    try:
        jsonschema.validate(result, schema)
    except jsonschema.ValidationError as exc:
        field = ".".join(map(str, exc.absolute_path)) or "the document"
        raise RemoteError(f"{where}: {field}: {exc.message[:200]} (not edgeseg's bench schema)") from None
    if len(result["results"]) != expected:
        raise RemoteError(f"{where}: {len(result['results'])} results for {expected} bundles")
    return result


def _check_space(device: Device, quoted_workdir: str, needed: int) -> None:
    """Refuse before copying when the device's disk cannot hold the upload (plus 10%)."""
    out = run(device, f"df -Pk {quoted_workdir} | tail -n 1", what="checking free space").split()
    free_kb = int(out[3]) if len(out) > 3 and out[3].isdigit() else None
    if free_kb is not None and free_kb * 1024 < 1.1 * needed:
        raise StorageError(
            f"{device.name} ({device.host}): the device's disk is full: {free_kb / 1024:.0f} MB free at "
            f"{quoted_workdir}, the bundles and images need {1.1 * needed / 1e6:.0f} MB; free space there or set "
            "bench.remote[].workdir to a larger disk (nothing local was changed)"
        )


def _stream(device: Device, script: str, on_line: Callable[[str], None]) -> None:
    """Run the bench, passing each line of its output on as it comes."""
    proc = subprocess.Popen(
        [*device.ssh_command(), script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        on_line(f"[{device.name}] {line.rstrip()}")
        tail = [*tail[-19:], line]
    code = proc.wait()
    if code == 0:
        return
    text = "".join(tail)
    error = next((line for line in reversed(tail) if line.startswith("error:")), None)
    if error and code not in (255,):
        # edgeseg on the device failed for a reason with its own exit code (e.g. 7: a runtime missing)
        raise _remote_edgeseg_error(device, code, error.removeprefix("error:").strip())
    raise classify(device, code, text, "benchmarking")


def _remote_edgeseg_error(device: Device, code: int, message: str) -> EdgesegError:
    error = RemoteError(f"{device.name} ({device.host}): edgeseg bench there failed: {message}")
    if code == DependencyError.exit_code:
        error = DependencyError(
            f"{device.name} ({device.host}): {message} (install it on the device: {install_hint()} or the runtime)"
        )
    elif code == ExportError.exit_code:  # the device refused a bundle that does not prove itself
        error = ExportError(f"{device.name} ({device.host}): {message}")
    elif code == StorageError.exit_code or any(s in message.lower() for s in DISK_FULL):
        error = StorageError(f"{device.name} ({device.host}): the device's disk is full: {message}")
    return error


def _cleanup(device: Device, quoted_workdir: str) -> None:
    try:
        run(device, f"rm -rf {quoted_workdir}", what="removing the work directory")
    except EdgesegError:
        pass  # the device went away mid-bench: the error that matters is already on its way
