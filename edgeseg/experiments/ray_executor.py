"""Sweeps on a Ray cluster: each variant's build is a Ray task, stage keys are claimed through a
Ray actor instead of a file lock, and the driver writes the summary as a local sweep does.

What a cluster needs: every node runs the same edgeseg (``pip install "edgeseg[cluster]"``) and
sees the sweep's ``runs/`` directory at the same path (a shared file system). Stage outputs are
published there atomically (``pipeline.publish_dir``); a task that Ray retries after its node died
starts from the stage's scratch again, so nothing half-written is ever published.

Without ``--ray`` this module is never imported, and neither is Ray.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgeseg.errors import ClusterUnreachableError, DependencyError

CONNECT_TIMEOUT_S = 5.0
CLAIM_POLL_S = 0.5
PROGRESS_POLL_S = 1.0  # how often the driver reads the stage board
QUIET_S = 1.0  # a stage running this long gets a line (cache hits, which take less, get none)
REPEAT_S = 30.0  # a stage still running is told again this often, with its elapsed time
TASK_RETRIES = 3  # Ray reruns a task whose worker or node died this many times


def connect(address: str):
    """Join the cluster at ``address`` (``host:port``, ``auto`` for the one this node belongs to,
    or ``local`` for a new single-node cluster in this process). Returns the ``ray`` module."""
    try:
        import ray
    except ImportError:
        raise DependencyError('ray is not installed; install it with: pip install "edgeseg[cluster]"') from None
    if ray.is_initialized():
        return ray
    if address not in ("auto", "local"):
        _check_reachable(address)
    ray.init(address=None if address == "local" else address, log_to_driver=False, logging_level="ERROR")
    return ray


def _check_reachable(address: str) -> None:
    """Ray's own client retries an unreachable GCS for minutes; a TCP connect says so in seconds."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterUnreachableError(f"--ray {address}: expected host:port (e.g. 10.0.0.5:6379), auto or local")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ClusterUnreachableError(
            f"--ray {address}: the Ray cluster does not answer ({exc.strerror or exc}); start it with "
            "`ray start --head` there, or check the address"
        ) from None


class KeyClaims:
    """Which task runs which stage key, cluster-wide (a Ray actor: one copy, calls serialised).

    A claim held by a task on a node that has since died is handed over: the retry of that
    task, or any other variant needing the key, runs the stage instead of waiting forever.
    """

    def __init__(self):
        self._holders: dict[str, tuple[str, str]] = {}  # key -> (holder, node id)

    def claim(self, key: str, holder: str, node: str) -> bool:
        current = self._holders.get(key)
        if current is None or current[0] == holder or not _node_alive(current[1]):
            self._holders[key] = (holder, node)
            return True
        return False

    def release(self, key: str, holder: str) -> None:
        if self._holders.get(key, (None,))[0] == holder:
            del self._holders[key]


def _node_alive(node_id: str) -> bool:
    import ray

    return any(n["NodeID"] == node_id and n["Alive"] for n in ray.nodes())


@dataclass(frozen=True)
class RayClaims:
    """``SharedCache.claims`` on a cluster: the same ``lock(name, key)`` as the file locks."""

    actor: object  # a KeyClaims actor handle (pickles into every task)

    def lock(self, name: str, key: str):
        return self._held(f"{name}-{key}")  # while another variant runs this stage; then link its files

    def device(self, device: str):
        """The lease on a device being timed, cluster-wide; ``local`` is the node this task runs
        on (each node's CPU times one artifact at a time, the nodes side by side)."""
        import logging

        import ray

        from edgeseg.build.devices import LOCAL, waiting_line

        node = ray.get_runtime_context().get_node_id()
        claim = f"device-{f'node-{node}' if device == LOCAL else device}"
        return self._held(claim, lambda: logging.getLogger(__name__).info(waiting_line(device)))

    @contextlib.contextmanager
    def _held(self, claim: str, on_wait: Callable[[], None] | None = None):
        import ray

        context = ray.get_runtime_context()
        holder, node = f"{context.get_task_id()}", context.get_node_id()
        waited = False
        while not ray.get(self.actor.claim.remote(claim, holder, node)):
            if on_wait and not waited:
                on_wait()
            waited = True
            time.sleep(CLAIM_POLL_S)
        try:
            yield
        finally:
            ray.get(self.actor.release.remote(claim, holder))


class StageBoard:
    """Which stage each task is running, cluster-wide (a Ray actor the tasks post to and the
    driver reads): the driver's one line per running stage."""

    def __init__(self):
        self._events: list[dict] = []

    def post(self, event: dict) -> None:
        self._events.append(event)

    def since(self, start: int) -> list[dict]:
        return self._events[start:]


class StageLines:
    """The driver's side of the board: a line when a stage has run past ``QUIET_S`` (node,
    variant, stage), again every ``REPEAT_S`` with its elapsed time, and one when it is done."""

    def __init__(self, board, emit: Callable[[str], None] | None):
        self.board, self.emit, self.read = board, emit, 0
        self.running: dict[tuple[str, str], list] = {}  # (variant, stage) -> [event, seen at, told at]

    def poll(self) -> None:
        import ray

        if self.emit is None:
            return
        events = ray.get(self.board.since.remote(self.read))
        self.read += len(events)
        now = time.monotonic()
        for event in events:
            key = (event["variant"], event["stage"])
            if event["state"] == "running":
                self.running[key] = [event, now, None]
            elif self.running.pop(key, [None, None, None])[2] is not None:  # told it ran: tell it ended
                self.emit(f"{_where(event)}: {event['stage']} done in {_elapsed(event['seconds'])}")
        for entry in self.running.values():
            event, seen, told = entry
            if now - seen >= QUIET_S and (told is None or now - told >= REPEAT_S):
                self.emit(f"{_where(event)}: {event['stage']} running, {_elapsed(now - seen)}")
                entry[2] = now


def _where(event: dict) -> str:
    return f"{event['node']}: {event['variant']}"


def _elapsed(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds // 60:.0f} min {seconds % 60:.0f} s"


def _on_head_node(ray, cls):
    """An actor on the head node, whose death ends the cluster anyway: a worker node that dies
    must not take the claims or the progress board along. Not "the driver's node": a driver
    started beside several raylets (Ray's test cluster, a workstation that joined the cluster)
    may attach to a worker's."""
    return ray.remote(cls).options(num_cpus=0, resources={"node:__internal_head__": 0.001}).remote()


def _cluster_line(ray) -> str:
    """Where the sweep runs: nodes, CPUs, and the node this driver is attached to (its death
    ends the sweep: start the driver on the head node)."""
    alive = [node for node in ray.nodes() if node["Alive"]]
    cpus = sum(node["Resources"].get("CPU", 0) for node in alive)
    driver = ray.get_runtime_context().get_node_id()
    return f"ray: {len(alive)} nodes, {cpus:g} CPUs; this driver on node {driver[:8]}"


def build_on_ray(build: Callable, jobs: list[tuple[str, dict, str]], shared, address: str, progress) -> dict[str, str]:
    """Run ``build(recipe dict, run dir, shared, hooks)`` (``sweep.build_variant``) for each
    ``(variant name, recipe dict, run dir)`` as a Ray task; name -> error for the variants that
    failed. ``shared`` is the sweep's cache; its stage keys are claimed through a ``KeyClaims``
    actor living as long as this driver. ``progress`` is the sweep's ``Progress``."""
    from dataclasses import replace

    ray = connect(address)
    if progress.stage:
        progress.stage(_cluster_line(ray))
    shared = replace(shared, claims=RayClaims(_on_head_node(ray, KeyClaims)))
    board = _on_head_node(ray, StageBoard)
    # a task whose node dies is retried by Ray; one that saw its raylet die while it waited on a
    # claim raises LocalRayletDiedError in the task instead: retried alike
    died = [ray.exceptions.LocalRayletDiedError, ray.exceptions.ActorDiedError]
    task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=died)(_build_here)
    pending = {task.remote(build, raw, run_dir, shared, board): name for name, raw, run_dir in jobs}
    lines = StageLines(board, progress.stage)
    failures: dict[str, str] = {}
    while pending:
        finished, _ = ray.wait(list(pending), timeout=PROGRESS_POLL_S)
        lines.poll()
        for done in finished:
            name = pending.pop(done)
            error, node = _outcome(ray, done)
            if error:
                failures[name] = error
            if progress.variant:
                progress.variant(name, error, node)
    return failures


def _outcome(ray, done) -> tuple[str | None, str | None]:
    try:
        return ray.get(done)
    except ray.exceptions.RayError as exc:  # retries spent, or an error outside the build's own
        cause = getattr(exc, "cause", None) or exc
        return f"the Ray task failed: {type(cause).__name__}: {str(cause).strip().splitlines()[-1]}", None


def _build_here(build: Callable, raw: dict, run_dir: str, shared, board) -> tuple[str | None, str]:
    """The Ray task: one variant's build on this node, each stage posted to the board as it
    starts and ends; (its error or None, where it ran)."""
    from pathlib import Path

    import ray

    where = f"node {ray.get_runtime_context().get_node_id()[:8]} on {socket.gethostname()}"
    variant = Path(run_dir).name

    def post(stage: str, state: str, seconds: float | None = None) -> None:
        board.post.remote({"node": where, "variant": variant, "stage": stage, "state": state, "seconds": seconds})

    hooks = {
        "on_start": lambda name: post(name, "running"),
        "on_stage": lambda result: post(
            result.name, "cached" if result.cached else "done", result.record.get("seconds")
        ),
    }
    return build(raw, run_dir, shared, hooks), where
