"""A real OpenSSH server on 127.0.0.1 with throwaway keys: the "device" of the remote-bench tests
and of benchmarks/remote_bench.py.

``start(root)`` writes host and client keys, an sshd_config and a client ssh_config with
aliases: ``device`` (an authorised key), ``stranger`` (a key the server does not know), ``full``
(an authorised key whose shell cannot write more than 256 KiB per file: a full disk, as writes
fail with EFBIG as they would with ENOSPC) and ``nobody-home`` (a closed port).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


class Unavailable(Exception):
    """sshd is not installed, or cannot start here."""


@dataclass
class Server:
    process: subprocess.Popen
    config: Path
    port: int

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def start(root: Path) -> Server:
    if not Path(SSHD).is_file() or shutil.which("ssh-keygen") is None:
        raise Unavailable(f"OpenSSH server not installed ({SSHD}); .ci/run installs Debian's openssh-server")
    host_pub = _keygen(root / "host_ed25519")
    good, stranger, full = (_keygen(root / name) for name in ("client", "stranger", "full"))
    limited = 'command="trap \'\' XFSZ; ulimit -f 256; eval \\"$SSH_ORIGINAL_COMMAND\\""'
    (root / "authorized_keys").write_text(f"{good}\n{limited} {full}\n")
    port = free_port()
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root}/host_ed25519\n"
        f"AuthorizedKeysFile {root}/authorized_keys\n"
        f"PidFile {root}/sshd.pid\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nLogLevel ERROR\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # the privilege separation directory sshd needs as root
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")], stderr=subprocess.PIPE, text=True)
    _wait_for_port(port, process)
    (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    common = (
        f"  HostName 127.0.0.1\n  User {getpass.getuser()}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {root}/known_hosts\n  StrictHostKeyChecking yes\n"
    )
    (root / "ssh_config").write_text(
        f"Host device\n{common}  Port {port}\n  IdentityFile {root}/client\n"
        f"Host stranger\n{common}  Port {port}\n  IdentityFile {root}/stranger\n"
        f"Host full\n{common}  Port {port}\n  IdentityFile {root}/full\n"
        f"Host nobody-home\n{common}  Port {free_port()}\n  IdentityFile {root}/client\n"
    )
    return Server(process, root / "ssh_config", port)


def _wait_for_port(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Unavailable(f"sshd could not start here: {process.stderr.read()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise Unavailable("sshd did not listen within 20 s")
