"""The inference contract every method implements: encode a person once, then synthesise frames.

    model = load_pretrained("models/demo").inference_model()
    state = model.encode(source_images, source_landmarks)   # {name: (b, ...)} the person
    frames = model(driving_landmark_images, state)           # (b, 3, s, s) in [-1, 1]

The animation pipeline, ONNX export, saved sources and the evaluation protocol use a
method only through this class, so a new method plugs in by subclassing it (and
registering a :class:`~talkinghead.models.registry.MethodSpec`).

What a *person state* holds is the method's choice (LSR: its two latents; FSTH: the
embedding and the AdaIN parameters; MetaPortrait: the source image, its features and the
identity code); :meth:`InferenceModel.person_state_spec` declares it, so generic code
can save it, batch it and export it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

if TYPE_CHECKING:
    from talkinghead.models.mouth_interior import MouthInterior


@dataclass(frozen=True)
class StateTensor:
    """One tensor of a person state.

    Args:
        shape: the shape of one person's tensor (no batch dimension).
        description: what it is (for ONNX manifests and messages).
    """

    shape: tuple[int, ...]
    description: str


class InferenceModel(nn.Module):
    """Base class of every method's inference model (the generator side, eval mode).

    Subclasses set :attr:`method`, build the networks named by their method spec's
    ``inference_networks`` as attributes, and implement :meth:`state_spec`,
    :meth:`synthesis_networks`, :meth:`encode` and :meth:`forward`.

    Args:
        config: the method's architecture config (it has ``image_size`` and
            ``landmark_style``).
    """

    method: ClassVar[str] = ""
    # Output frames on each side that :meth:`postprocess` needs (0: frames are independent).
    temporal_radius: ClassVar[int] = 0

    def __init__(self, config: Any):
        super().__init__()
        self.config = config

    @property
    def image_size(self) -> int:
        """Side of the square frames the model works at."""
        return int(self.config.image_size)

    @property
    def landmark_style(self) -> str:
        """The rasteriser of the landmark images it reads (``fsth`` or ``dense``)."""
        return str(self.config.landmark_style)

    @property
    def landmark_channels(self) -> int:
        """Channels of one landmark image."""
        return int(getattr(self.config, "landmark_channels", 3))

    @property
    def network_names(self) -> list[str]:
        """The networks this model holds, in a fixed order (their weights come from a release)."""
        return [name for name, _ in self.named_children()]

    def synthesis_networks(self) -> list[str]:
        """Networks :meth:`forward` runs for every frame (compiled for speed, exported to ONNX)."""
        raise NotImplementedError(f"{type(self).__name__} must list its per-frame networks")

    @classmethod
    def state_spec(cls, config: Any) -> dict[str, StateTensor]:
        """Name -> shape and meaning of every person-state tensor of a model of ``config``, in a fixed order.

        A class method, so the state can be known without building the networks.
        """
        raise NotImplementedError(f"{cls.__name__} must declare its person state")

    def person_state_spec(self) -> dict[str, StateTensor]:
        """:meth:`state_spec` of this model: what :meth:`encode` returns, in a fixed order."""
        return self.state_spec(self.config)

    def encode(self, source_images: torch.Tensor, source_landmarks: torch.Tensor) -> dict[str, torch.Tensor]:
        """The person state of (b, k, 3, s, s) source frames and their (b, k, c, s, s) landmark images.

        Returns:
            {name: (b, *shape)} as declared by :meth:`person_state_spec`.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement encode")

    def forward(self, landmarks: torch.Tensor, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(b, 3, s, s) frames in [-1, 1] for (b, c, s, s) landmark images and a batched person state."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def postprocess(self, window: torch.Tensor) -> torch.Tensor:
        """Temporal post-processing of synthesised frames (e.g. temporal super-resolution).

        Args:
            window: (b, 2r + 1, 3, s, s) each frame with its ``r = temporal_radius``
                neighbours on each side (repeated at the ends of the video).

        Returns:
            (b, 3, S, S) the centre frames after post-processing; the default returns them as they are.
        """
        return window[:, window.shape[1] // 2]

    def output_warp(self) -> "OutputWarp | None":
        """The method's way to render frames larger than :attr:`image_size` from the source photo's own pixels.

        None (the default): the method cannot, and callers resize its frames. A method that
        warps its source (MetaPortrait) returns an :class:`OutputWarp`, so shared code (the
        animation pipeline, evaluation) can ask for 256 or 512 px frames while the networks
        keep running at ``image_size``.
        """
        return None

    def mouth_interior(self) -> "MouthInterior | None":
        """The model's mouth-interior generator, applied to frames at the output size (None: it has none).

        A model that holds one (:mod:`talkinghead.models.mouth_generator`) returns a
        :class:`~talkinghead.models.mouth_interior.MouthInterior`, so shared code paints
        teeth and cavity into an opening mouth after rendering each frame.
        """
        return None

    def expand_state(self, state: Mapping[str, torch.Tensor], batch_size: int) -> dict[str, torch.Tensor]:
        """One person's state (no batch dimension) repeated ``batch_size`` times, on this model's device."""
        device = next(self.parameters()).device
        return {name: value.to(device)[None].expand(batch_size, *value.shape) for name, value in state.items()}


class OutputWarp:
    """An optional capability of an :class:`InferenceModel`: frames at an output size S > s for the same network cost.

    The per-frame networks run at the model's size s and return *parts* (what the method
    needs to render at S: e.g. the frame, the flow, the occlusion); :meth:`compose` then
    renders the (b, 3, S, S) frame from the parts and the source frames kept at S. Shared
    code runs :attr:`parts_model` wherever it would run the model itself (eager, compiled,
    or exported to ONNX), so the exported graph stays the small-resolution networks.

    Attributes:
        parts_model: an :class:`InferenceModel` with the same person state whose forward
            returns (b, p, s, s) parts instead of frames.
    """

    parts_model: InferenceModel

    def source_state(self, source_images: torch.Tensor, source_landmarks: torch.Tensor) -> dict[str, torch.Tensor]:
        """What :meth:`compose` needs of the person at S, from (b, k, 3, S, S) frames and (b, k, c, s, s) landmark images.

        The frames are the same K frames given to :meth:`InferenceModel.encode`, cut at S.
        Returns {name: (b, ...)}.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement source_state")

    def enlarged_source_state(self, state: Mapping[str, torch.Tensor], size: int) -> dict[str, torch.Tensor]:
        """:meth:`source_state` from a person state alone (no photos at S: a saved or fine-tuned state).

        Args:
            state: one person's state, no batch dimension.
            size: the output size S.

        Returns:
            {name: tensor} without a batch dimension; the state's own frames enlarged to S.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement enlarged_source_state")

    def compose(self, parts: torch.Tensor, landmarks: torch.Tensor, state: Mapping[str, torch.Tensor],
                full_state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(b, 3, S, S) frames in [-1, 1] from (b, p, s, s) parts, the (b, c, s, s) landmark images,
        the batched person state and the batched :meth:`source_state`."""
        raise NotImplementedError(f"{type(self).__name__} must implement compose")
