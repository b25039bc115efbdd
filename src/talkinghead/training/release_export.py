"""``talkinghead export release``: a training checkpoint's weights as a release folder.

Callable without the command line: ``export_checkpoint_release("runs/x", "release/",
ReleaseExportOptions(dtype="float16", generators_only=True))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from talkinghead.config import to_dict
from talkinghead.models.pretrained import load_pretrained
from talkinghead.utils.output_guard import (
    check_output_location, check_replaceable_folder, check_writable, output_errors,
)
from talkinghead.weights.release import cast_state_dicts, save_release

# The command name recorded in the folder's marker: --overwrite replaces only what it wrote.
EXPORT_COMMAND = "export release"


@dataclass(frozen=True)
class ReleaseExportOptions:
    """What :func:`export_checkpoint_release` writes.

    Attributes:
        use_ema: the EMA generator weights (True) or the raw ones.
        dtype: storage precision (``float32``, ``float16`` or ``bfloat16``; loading converts
            back to float32).
        generators_only: keep only the networks inference needs (no discriminator: enough to
            animate, not to fine-tune).
        overwrite: replace an output folder this command wrote earlier.
    """

    use_ema: bool = True
    dtype: str = "float32"
    generators_only: bool = False
    overwrite: bool = False


def export_checkpoint_release(
    checkpoint: str | Path, output: str | Path, options: ReleaseExportOptions = ReleaseExportOptions()
) -> Path:
    """Write the weights of ``checkpoint`` (file, run folder or release) to the release folder ``output``.

    The output is checked before anything is read (not inside the input, replaceable, writable)
    and written atomically: an interrupted export leaves no half-written folder.

    Returns:
        The release folder.
    """
    check_output_location(output, {"checkpoint": checkpoint})
    if options.overwrite:
        check_replaceable_folder(output, EXPORT_COMMAND)
    check_writable(output)
    pretrained = load_pretrained(checkpoint, use_ema=options.use_ema)
    info = {"method": pretrained.method, "model": to_dict(pretrained.config), "source": str(pretrained.source),
            **pretrained.info}
    states = pretrained.state_dicts
    if options.dtype != "float32":
        states = cast_state_dicts(states, options.dtype)
        info["stored_dtype"] = options.dtype  # loading converts back to the networks' float32
    if options.generators_only:
        states = {name: state for name, state in states.items() if name in pretrained.spec.inference_networks}
    with output_errors(output):
        return save_release(output, info, states, overwrite=options.overwrite, command=EXPORT_COMMAND)
