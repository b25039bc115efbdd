"""What the protocol evaluates: a trained LSR model, or a reference method needing no training.

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
from talkinghead.evaluation.baselines import BASELINES
from talkinghead.evaluation.options import EvaluateOptions
from talkinghead.evaluation.test_set import TestVideo


class LSRMethod:
    """A trained LSR model: encode the shots (optionally fine-tune on them), synthesise targets."""

    label = "LSR"

    def __init__(self, checkpoint: str | Path, options: EvaluateOptions):
        from talkinghead.inference.pipeline import AnimationPipeline, resolve_device
        from talkinghead.models.lsr_pretrained import load_lsr_weights

        self.pretrained = load_lsr_weights(checkpoint)
        self.device = resolve_device(options.device)
        self.pipeline = AnimationPipeline.from_weights(self.pretrained, device=self.device)
        self.config = self.pipeline.config
        self.size = self.config.image_size
        self.rasterizer = get_rasterizer(self.config.landmark_style)
        self.options = options

    def landmark_images(self, video: TestVideo, frames: list[int], points: np.ndarray | None = None) -> torch.Tensor:
        """(n, c, s, s) landmark images of ground-truth frames (or of given points)."""
        if points is None:
            source = video.landmarks68 if self.rasterizer.landmarks == "ibug68" else video.dense
            points = source[frames]
        return image_to_tensor(np.stack([self.rasterizer(p, self.size) for p in points]))

    def prepare(self, video: TestVideo, shots: np.ndarray, finetuned: bool) -> Any:
        images = image_to_tensor(np.stack([video.images[f] for f in shots.tolist()]))
        landmarks = self.landmark_images(video, shots.tolist())
        if not finetuned:
            z_layout, z_style = self.pipeline.model.encode(images[None].to(self.device), landmarks[None].to(self.device))
            return self.pipeline.model, z_layout[0], z_style[0]
        from talkinghead.config.lsr import FinetuneConfig
        from talkinghead.data.subject import SubjectFrames
        from talkinghead.models.lsr import LSRModel
        from talkinghead.training.lsr_finetune import finetune_networks

        config = FinetuneConfig(steps=self.options.finetune_steps, perceptual="auto", device=str(self.device.type))
        tuned = finetune_networks(self.pretrained, SubjectFrames(images, landmarks, [str(f) for f in shots]), config)
        model = LSRModel(self.config).to(self.device).eval()
        for name in model.network_names:
            getattr(model, name).load_state_dict(tuned.networks[name].state_dict())
        return model, tuned.z_layout[0].to(self.device), tuned.z_style[0].to(self.device)

    @torch.no_grad()
    def generate(self, state: Any, landmark_images: torch.Tensor, points68: np.ndarray) -> np.ndarray:
        model, z_layout, z_style = state
        out = []
        for start in range(0, len(landmark_images), self.options.batch_size):
            x = landmark_images[start:start + self.options.batch_size].to(self.device)
            b = len(x)
            image = model(x, z_layout[None].expand(b, -1), z_style[None].expand(b, -1)).image.float()
            out.append(image.add(1).mul(127.5).clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(out)


class BaselineMethod:
    """A reference method that needs no training (``copy-source``, ``landmark-warp``)."""

    def __init__(self, name: str, size: int):
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
