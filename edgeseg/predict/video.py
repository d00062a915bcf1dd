"""Video files and cameras through a bundle or checkpoint: an overlay video and the class-id
stream, with a live line of frames per second and milliseconds per stage (``kit.segment_video``,
PyAV for decoding and encoding; torch-free for bundles)."""

from __future__ import annotations

from pathlib import Path

from edgeseg.predict import kit
from edgeseg.predict.images import output_folder

is_video = kit.is_video


def predict_video(segmenter, source: str, out_dir: Path, alpha: float = 0.5) -> dict:
    """``<stem>_overlay.mp4`` and ``<stem>_classes.mkv`` in ``out_dir`` (whole or not at all).

    Returns:
        ``kit.summarise``'s figures over the frames, the wall-clock frame rate and both paths.

    Raises:
        DependencyError: PyAV is not installed (exit 7).
        CorruptDataError: the file does not decode as video, or the camera does not exist (exit 10).
    """
    from edgeseg.errors import CorruptDataError, DependencyError

    try:
        import av  # noqa: F401  (the kit imports it; asked here for the error message)
    except ModuleNotFoundError:
        raise DependencyError("video needs PyAV: pip install 'edgeseg[bench]' (or pip install av)") from None
    progress = kit.ProgressLine()
    try:
        with output_folder(out_dir):
            summary = kit.segment_video(segmenter, source, out_dir, alpha, progress=progress)
    except (ValueError, OSError) as exc:  # PyAV's errors for input it cannot read are both
        said = str(exc) if source in str(exc) else f"{source}: {exc}"
        raise CorruptDataError(f"{said} (not a video FFmpeg can decode)") from None
    finally:
        progress.end()
    return summary
