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

    @contextlib.contextmanager
    def lock(self, name: str, key: str):
        import ray

        context = ray.get_runtime_context()
        holder, node = f"{context.get_task_id()}", context.get_node_id()
        claim = f"{name}-{key}"
        while not ray.get(self.actor.claim.remote(claim, holder, node)):
            time.sleep(CLAIM_POLL_S)  # another variant is running this stage: then link its files
        try:
            yield
        finally:
            ray.get(self.actor.release.remote(claim, holder))


def build_on_ray(
    build: Callable, jobs: list[tuple[str, dict, str]], shared, address: str, on_stage: Callable[..., None] | None
) -> dict[str, str]:
    """Run ``build(recipe dict, run dir, shared)`` (``sweep.build_variant``) for each ``(variant
    name, recipe dict, run dir)`` as a Ray task; name -> error for the variants that failed.
    ``shared`` is the sweep's cache; its stage keys are claimed through a ``KeyClaims`` actor
    living as long as this driver."""
    from dataclasses import replace

    ray = connect(address)
    # the claims live on the driver's node: a worker node that dies must not take them along
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    claims = RayClaims(ray.remote(KeyClaims).options(num_cpus=0, scheduling_strategy=here).remote())
    # a task whose node dies is retried by Ray; one that saw its raylet die while it waited on a
    # claim raises LocalRayletDiedError in the task instead: retried alike
    died = [ray.exceptions.LocalRayletDiedError, ray.exceptions.ActorDiedError]
    task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=died)(_build_here)
    shared = replace(shared, claims=claims)
    pending = {task.remote(build, raw, run_dir, shared): name for name, raw, run_dir in jobs}
    failures: dict[str, str] = {}
    while pending:
        [done], _ = ray.wait(list(pending))
        name = pending.pop(done)
        try:
            error, node = ray.get(done)
        except ray.exceptions.RayError as exc:  # retries spent, or an error outside the build's own
            cause = getattr(exc, "cause", None) or exc
            error, node = f"the Ray task failed: {type(cause).__name__}: {str(cause).strip().splitlines()[-1]}", None
        if error:
            failures[name] = error
        if on_stage:
            on_stage(name, error, node)
    return failures


def _build_here(build: Callable, raw: dict, run_dir: str, shared) -> tuple[str | None, str]:
    """The Ray task: one variant's build on this node; (its error or None, where it ran)."""
    import ray

    where = f"node {ray.get_runtime_context().get_node_id()[:8]} on {socket.gethostname()}"
    return build(raw, run_dir, shared), where
