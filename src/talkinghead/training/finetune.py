"""Subject fine-tuning for any method: a trained model and a person's images in, a release out.

The person's images are prepared like the model's training data (same detector, crop
and landmark images); the method's recipe tunes the networks; the result is a release
folder holding the tuned networks, the person's state (``subject.safetensors``, used by
animation instead of encoding the photos again) and ``config.json`` recording what was done.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from talkinghead.config import load_config, to_dict
from talkinghead.data.subject import SubjectFrames, prepare_subject
from talkinghead.models.pretrained import SUBJECT, PretrainedModel, load_pretrained
from talkinghead.training.recipe import FinetunedNetworks, TrainingSetupError, get_recipe
from talkinghead.utils.output_guard import (
    check_output_location,
    check_replaceable_folder,
    check_writable,
    output_errors,
)
from talkinghead.weights.release import save_release

FRAMES_PER_VIDEO = 8  # frames sampled from each of the subject's videos


@dataclass
class FinetuneResult:
    """What a fine-tuning run did.

    Attributes:
        output: the release folder written.
        num_images: subject frames tuned on.
        steps: optimiser steps.
        seconds_per_step: mean wall time of one step (all phases).
        before: reconstruction of the subject frames by the meta-trained model (l1, psnr).
        after: the same after fine-tuning.
        model: which model was tuned (``demo (MetaPortrait, 128 px)``).
    """

    output: Path
    num_images: int
    steps: int
    seconds_per_step: float
    before: dict[str, float]
    after: dict[str, float]
    model: str = ""

    def format(self) -> str:
        model = f", from {self.model}" if self.model else ""
        return (
            f"fine-tuned on {self.num_images} image(s): {self.steps} steps, {self.seconds_per_step:.3f} s/step{model}\n"
            f"  reconstruction of the subject images: L1 {self.before['l1']:.4f} -> {self.after['l1']:.4f}, "
            f"PSNR {self.before['psnr']:.2f} -> {self.after['psnr']:.2f} dB\n"
            f"  written to {self.output}"
        )


def finetune_config(
    method: str,
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    values: dict[str, Any] | None = None,
) -> Any:
    """The fine-tuning config of ``method``: its schema's defaults, then a YAML file, ``values``, overrides."""
    kind = get_recipe(method).finetune_config_kind
    return load_config(path, list(overrides or []), kind=kind, values=values)


def finetune_networks(pretrained: PretrainedModel, subject: SubjectFrames, config: Any) -> FinetunedNetworks:
    """Tune ``pretrained`` on prepared subject frames with its method's recipe (in memory)."""
    return get_recipe(pretrained.method, where=str(pretrained.source)).finetune(pretrained, subject, config)


def finetune(
    checkpoint: str | Path | PretrainedModel,
    inputs: list[str | Path],
    output: str | Path,
    config: Any | None = None,
    *,
    config_path: str | Path | None = None,
    overrides: list[str] | None = None,
    frames_per_video: int = FRAMES_PER_VIDEO,
    overwrite: bool = False,
) -> FinetuneResult:
    """Fine-tune the model in ``checkpoint`` on the person in ``inputs``; write the release ``output``.

    Args:
        checkpoint: a release folder, a training checkpoint or a run folder (any method),
            or weights already read by :func:`load_pretrained`.
        inputs: the subject's images / videos / folders of them.
        output: the release folder to write (refused if it exists, unless ``overwrite``).
        config: the method's fine-tuning config; None reads ``config_path`` + ``overrides``
            (the method's defaults without them).
        frames_per_video: frames sampled from each subject video.
        overwrite: replace an existing output folder that an earlier fine-tuning wrote
            (its marker file lists every file in it); any other folder is refused.
    """
    output = Path(output)
    source = checkpoint.source if isinstance(checkpoint, PretrainedModel) else checkpoint
    check_output_location(output, {"checkpoint": source, "subject input": list(inputs)})
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise TrainingSetupError(f"{output}: already exists; pass --overwrite to replace it or choose another folder")
    if overwrite:
        check_replaceable_folder(output, "finetune")
    check_writable(output)
    pretrained = checkpoint if isinstance(checkpoint, PretrainedModel) else load_pretrained(checkpoint)
    if config is None:
        config = finetune_config(pretrained.method, config_path, overrides)
    if not getattr(config, "use_ema", True) and pretrained.kind == "checkpoint":
        pretrained = load_pretrained(pretrained.source, use_ema=False)  # the raw weights, not the EMA
    model = pretrained.config
    subject = prepare_subject(
        inputs,
        size=model.image_size,
        landmark_style=model.landmark_style,
        frames_per_video=frames_per_video,
        prepare=pretrained.prepare_config(),
    )
    tuned = finetune_networks(pretrained, subject, config)
    info = {
        "method": pretrained.method,
        "model": to_dict(model),
        "finetune": to_dict(config),
        "base_checkpoint": str(pretrained.source),
        "base_info": pretrained.info,
        "prepare": pretrained.info.get("prepare"),
        "subject_sources": subject.sources,
        "seconds_per_step": tuned.seconds_per_step,
        "reconstruction_before": tuned.before,
        "reconstruction_after": tuned.after,
    }
    modules: dict = dict(tuned.networks)
    modules[SUBJECT] = {name: value[None] for name, value in tuned.person_state.items()}
    with output_errors(output):
        save_release(output, info, modules, tuned.extra_files or None, overwrite=overwrite, command="finetune")
    steps = int(getattr(config, "steps", 0))
    return FinetuneResult(output, len(subject), steps, tuned.seconds_per_step, tuned.before, tuned.after,
                          pretrained.describe())
