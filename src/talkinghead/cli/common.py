"""What several commands share: the model option's help, the overrides' help, the pre-flight checks."""

from __future__ import annotations

from pathlib import Path

from talkinghead.utils.bundled import bundled_model_names

# --checkpoint's help, shared by every command that reads a trained model.
MODEL_HELP = "release folder, checkpoint file or run folder, or a bundled model by name (" + ", ".join(bundled_model_names()) + ")"
OVERRIDES_HELP = "config overrides as dotted key=value pairs, e.g. crop.scale=2.0 size=224"


def preflight(numbers=(), *, folder: tuple[Path, str] | None = None, media: tuple[Path, str] | None = None) -> None:
    """What every command checks before loading a model (see :mod:`talkinghead.utils.preflight`).

    Args:
        numbers: numeric option checks (``at_least``/``above`` of utils.preflight).
        folder: ``(path, option)`` of an output that must be a folder, checked writable too.
        media: ``(path, option)`` of a video-or-PNG-folder output (its suffix must be supported).
    """
    from talkinghead.utils.output_guard import check_writable
    from talkinghead.utils.preflight import check_folder_output, check_numbers

    check_numbers(numbers)
    if folder is not None:
        path, option = folder
        check_folder_output(path, option)
        check_writable(path, option=option, is_folder=True)
    if media is not None:
        from talkinghead.inference.writers import check_output_path

        check_output_path(*media)
