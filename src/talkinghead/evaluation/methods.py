"""What the protocol evaluates: a trained model of any method, or a reference method needing no training.

Both answer the same two calls: ``prepare(video, shots, finetuned)`` once per (video, K)
and ``generate(state, landmark_images, points68)`` for the targets, so the protocol loop
does not know which it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from talkinghead.data.rasterize import get_rasterizer, image_to_tensor
from talkinghead.data.subject import SubjectFrames
from talkinghead.evaluation.baselines import BASELINES
from talkinghead.evaluation.options import EvaluateOptions
from talkinghead.evaluation.test_set import TestVideo
from talkinghead.models.pretrained import load_pretrained
from talkinghead.training.finetune import finetune_config, finetune_networks
from talkinghead.utils.device import resolve_device


class TrainedMethod:
    """A trained model of any registered method: encode the shots (optionally fine-tune on them), synthesise.

    Attributes:
        name: the method's registered name (``results.json`` records it per run).
        label: how tables show it.
        baseline: False (a trained model).
    """

    baseline = False

    def __init__(self, checkpoint: str | Path, options: EvaluateOptions):
        self.pretrained = load_pretrained(checkpoint)
        self.name = self.pretrained.method
        self.label = self.pretrained.spec.label
        self.device = resolve_device(options.device)
        self.model = self.pretrained.inference_model().to(self.device)
        self.model_size = self.model.image_size
        self.size = options.output_size or self.model_size  # what the frames are compared at
        self.rasterizer = get_rasterizer(self.model.landmark_style)
        self.options = options

    def landmark_images(self, video: TestVideo, frames: list[int], points: np.ndarray | None = None) -> torch.Tensor:
        """(n, c, s, s) landmark images at the model's size of ground-truth frames (or of given points at ``size``)."""
        if points is None:
            source = video.landmarks68 if self.rasterizer.landmarks == "ibug68" else video.dense
            points = source[frames]
        scale = self.model_size / self.size
        return image_to_tensor(np.stack([self.rasterizer(p * scale, self.model_size) for p in points]))

    def _shot_images(self, video: TestVideo, shots: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(k, 3, s, s) shots at the model's size and (k, 3, S, S) at the compared size."""
        full = np.stack([video.images[f] for f in shots.tolist()])
        small = full if self.size == self.model_size else np.stack(
            [cv2.resize(im, (self.model_size, self.model_size), interpolation=cv2.INTER_AREA) for im in full])
        return image_to_tensor(small), image_to_tensor(full)

    def prepare(self, video: TestVideo, shots: np.ndarray, finetuned: bool) -> Any:
        """(inference model, person state) for the shots; fine-tuned on them when asked."""
        images, full = self._shot_images(video, shots)
        landmarks = self.landmark_images(video, shots.tolist())
        mouth = self._mouth_reference(self.model, full, video.dense[shots] if len(video.dense) else None)
        if not finetuned:
            state = self.model.encode(images[None].to(self.device), landmarks[None].to(self.device))
            return self.model, {name: value[0] for name, value in state.items()}, self._full_state(
                self.model, full, landmarks), mouth
        config = finetune_config(
            self.name, values={"steps": self.options.finetune_steps, "perceptual": "auto", "device": self.device.type}
        )
        tuned = finetune_networks(self.pretrained, SubjectFrames(images, landmarks, [str(f) for f in shots]), config)
        model = self.pretrained.spec.inference_model(self.pretrained.config).to(self.device).eval()
        for name in model.network_names:
            getattr(model, name).load_state_dict(tuned.networks[name].state_dict())
        return (model, {name: value.to(self.device) for name, value in tuned.person_state.items()},
                self._full_state(model, full, landmarks), mouth)

    def _mouth_reference(self, model, full: torch.Tensor, dense: np.ndarray | None) -> dict | None:
        """The person's mouth for the model's mouth generator, from the (k, 3, S, S) shots (None: no generator)."""
        mouth = model.mouth_interior() if self.options.mouth else None
        if mouth is None or dense is None or dense.shape[1] < 468:
            return None
        return mouth.reference(full.to(self.device), torch.from_numpy(np.asarray(dense[..., :2], np.float32)))

    def _full_state(self, model, full: torch.Tensor, landmarks: torch.Tensor) -> dict | None:
        """The output warp's source state at the compared size (None: the model's frames are resized)."""
        warp = model.output_warp() if self.size > self.model_size else None
        if warp is None:
            return None
        state = warp.source_state(full[None].to(self.device), landmarks[None].to(self.device))
        return {name: value[0] for name, value in state.items()}

    @torch.no_grad()
    def generate(self, state: Any, landmark_images: torch.Tensor, points68: np.ndarray,
                 dense: np.ndarray | None = None) -> np.ndarray:
        """(n, S, S, 3) uint8 frames for (n, c, s, s) landmark images.

        ``dense``: the (n, 478, >= 2) target points at the compared size; with them, a model's
        mouth generator paints the opening of the mouth.
        """
        model, person, full, mouth_reference = state
        warp = model.output_warp() if full is not None else None
        mouth = model.mouth_interior() if mouth_reference is not None and dense is not None else None
        out = []
        for start in range(0, len(landmark_images), self.options.batch_size):
            x = landmark_images[start:start + self.options.batch_size].to(self.device)
            batched = model.expand_state(person, len(x))
            if warp is not None:
                image = warp.compose(warp.parts_model(x, batched), x, batched, model.expand_state(full, len(x))).float()
            else:
                image = model(x, batched).float()
                if image.shape[-1] != self.size:
                    image = torch.nn.functional.interpolate(image, size=(self.size, self.size), mode="bicubic",
                                                            align_corners=False)
            if mouth is not None:
                points = torch.from_numpy(np.asarray(dense[start:start + len(x), :, :2], np.float32))
                image = mouth.paint(image, points.to(self.device), mouth_reference)
            out.append(image.add(1).mul(127.5).clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(out)


class BaselineMethod:
    """A reference method that needs no training (``copy-source``, ``landmark-warp``)."""

    baseline = True

    def __init__(self, name: str, size: int):
        self.name = name
        self.label = name
        self.function = BASELINES[name]
        self.size = size

    def landmark_images(self, video: TestVideo, frames: list[int], points: np.ndarray | None = None) -> None:
        return None

    def prepare(self, video: TestVideo, shots: np.ndarray, finetuned: bool) -> Any:
        return np.stack([video.images[f] for f in shots.tolist()]), video.landmarks68[shots]

    def generate(self, state: Any, landmark_images: Any, points68: np.ndarray, dense: np.ndarray | None = None) -> np.ndarray:
        images, points = state
        return np.stack([self.function(images, points, target) for target in points68])
