"""User-facing errors. Each kind maps to its own exit code so scripts can tell them apart."""


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


class DeviceAuthError(RemoteError):
    """The device refused the SSH key (edgeseg never asks for a password), or its host key."""

    exit_code = 13
