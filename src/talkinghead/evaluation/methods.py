"""What the protocol evaluates: a trained model of any method, or a reference method needing no training.

Both answer the same two calls: ``prepare(video, shots, finetuned)`` once per (video, K)
and ``generate(state, landmark_images, points68)`` for the targets, so the protocol loop
does not know which it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
        self.size = self.model.image_size
        self.rasterizer = get_rasterizer(self.model.landmark_style)
        self.options = options

    def landmark_images(self, video: TestVideo, frames: list[int], points: np.ndarray | None = None) -> torch.Tensor:
        """(n, c, s, s) landmark images of ground-truth frames (or of given points)."""
        if points is None:
            source = video.landmarks68 if self.rasterizer.landmarks == "ibug68" else video.dense
            points = source[frames]
        return image_to_tensor(np.stack([self.rasterizer(p, self.size) for p in points]))

    def prepare(self, video: TestVideo, shots: np.ndarray, finetuned: bool) -> Any:
        """(inference model, person state) for the shots; fine-tuned on them when asked."""
        images = image_to_tensor(np.stack([video.images[f] for f in shots.tolist()]))
        landmarks = self.landmark_images(video, shots.tolist())
        if not finetuned:
            state = self.model.encode(images[None].to(self.device), landmarks[None].to(self.device))
            return self.model, {name: value[0] for name, value in state.items()}
        config = finetune_config(
            self.name, values={"steps": self.options.finetune_steps, "perceptual": "auto", "device": self.device.type}
        )
        tuned = finetune_networks(self.pretrained, SubjectFrames(images, landmarks, [str(f) for f in shots]), config)
        model = self.pretrained.spec.inference_model(self.pretrained.config).to(self.device).eval()
        for name in model.network_names:
            getattr(model, name).load_state_dict(tuned.networks[name].state_dict())
        return model, {name: value.to(self.device) for name, value in tuned.person_state.items()}

    @torch.no_grad()
    def generate(self, state: Any, landmark_images: torch.Tensor, points68: np.ndarray) -> np.ndarray:
        model, person = state
        out = []
        for start in range(0, len(landmark_images), self.options.batch_size):
            x = landmark_images[start:start + self.options.batch_size].to(self.device)
            image = model(x, model.expand_state(person, len(x))).float()
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

    def generate(self, state: Any, landmark_images: Any, points68: np.ndarray) -> np.ndarray:
        images, points = state
        return np.stack([self.function(images, points, target) for target in points68])
