"""User-facing errors. Each kind maps to its own exit code so scripts can tell them apart."""

import errno


class EdgesegError(Exception):
    """An error a person can fix; the CLI prints it without a traceback."""

    exit_code = 1


class RecipeError(EdgesegError):
    """The recipe (or a --set override) is invalid. Message names file and dotted field."""

    exit_code = 2


class UnknownNameError(RecipeError):
    """A name that no registry knows (a dataset, backbone, format, runtime, stage...); the
    message lists the known names and the nearest one."""


class GateError(EdgesegError):
    """An artifact missed a ``gates:`` limit of the recipe: the build refuses to ship it."""

    exit_code = 3


class DataError(EdgesegError):
    """A dataset cannot be found or opened: a missing root, split, folder or download."""

    exit_code = 4


class CorruptDataError(DataError):
    """A sample is unusable: an image or mask that does not decode, sizes that disagree, labels
    out of range, an image without its mask. Message names the file. (A DataError, so
    ``data.on_bad_sample: skip`` covers it.)"""

    exit_code = 10


class WeightsError(EdgesegError):
    """Pretrained weights or a checkpoint cannot be loaded into the architecture."""

    exit_code = 5


class CheckpointError(EdgesegError):
    """A checkpoint file is missing, unreadable, or from an incompatible run."""

    exit_code = 6


class DependencyError(EdgesegError):
    """An optional runtime or library (openvino, tensorrt, a GPU) is not available here."""

    exit_code = 7


class ExportError(EdgesegError):
    """An export failed, or its artifact disagrees with PyTorch beyond the recipe's limits."""

    exit_code = 8


class BusyError(EdgesegError):
    """Another live edgeseg run holds the output directory's lock."""

    exit_code = 11


class StorageError(EdgesegError):
    """The disk filled up (or refused a write) while a stage was writing its outputs."""

    exit_code = 9


class RemoteError(EdgesegError):
    """A remote bench device failed: edgeseg there stopped, or ssh did (see the subclasses)."""

    exit_code = 12


class DeviceUnreachableError(RemoteError):
    """The device does not answer over SSH (refused, unresolved, timed out)."""

    exit_code = 12


class ClusterUnreachableError(RemoteError):
    """The Ray cluster of ``sweep --ray`` does not answer at its address."""

    exit_code = 12


class DeviceAuthError(RemoteError):
    """The device refused the SSH key (edgeseg never asks for a password), or its host key."""

    exit_code = 13


# What the file system says when it refuses to store more (full, over quota, read-only): a
# write anywhere maps to StorageError (exit 9).
STORAGE_REFUSED = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)

# A path that cannot be what the command needs (a file where a folder goes, a name too long,
# no permission): the user's to fix, exit 2.
WRONG_PATH = (errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.EACCES, errno.EPERM)


def os_error_in(exc: BaseException) -> OSError | None:
    """The OSError that caused ``exc``, itself included: libraries (torch.save, onnx.save)
    re-raise a failed write as their own RuntimeError with the OSError as its context."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno is not None:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def storage_error(exc: BaseException, path=None) -> StorageError | None:
    """A StorageError (exit 9) naming the file (the error's, else ``path``: the file being
    written) when ``exc`` comes from a full disk, else None."""
    cause = os_error_in(exc)
    if cause is None or cause.errno not in STORAGE_REFUSED:
        return None
    where = cause.filename or path or "a file edgeseg was writing"
    return StorageError(f"{where}: {cause.strerror}; free space and run the command again")


def or_storage(exc: BaseException, error: EdgesegError, path=None) -> EdgesegError:
    """``error``, unless ``exc`` came from a full disk: then the StorageError (exit 9). Libraries
    that write from C++ (torch.onnx.export, converters) lose the errno; a failed write to
    ``path`` while its file system has under 1 MiB left is taken as a full disk too."""
    if full := storage_error(exc, path):
        return full
    if path is not None and _nearly_full(path):
        return StorageError(f"{path}: no space left on device while writing it; free space and run the command again")
    return error


def _nearly_full(path) -> bool:
    import os

    folder = os.path.dirname(os.path.abspath(path))
    while folder and not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < (1 << 20)


def user_error(exc: BaseException) -> EdgesegError | None:
    """The one-line error a person can act on for a file-system failure that reached the CLI:
    exit 9 for a full disk, 2 for a path that cannot be used, 1 for any other named file."""
    if full := storage_error(exc):
        return full
    cause = os_error_in(exc)
    if cause is None or cause.filename is None:
        return None
    kind = RecipeError if cause.errno in WRONG_PATH else EdgesegError
    return kind(f"{cause.filename}: {cause.strerror or cause}")
