"""The MetaPortrait one-shot base model (MetaPortrait §3.1): dense-landmark warping + ID-preserving refinement.

The networks are built from one :class:`MetaPortraitModelConfig`. The functions below take
the networks as arguments (they may be DDP- or compile-wrapped during training), so the
trainer and the inference model run the same equations:

    x_in = I_s ++ L_s ++ L_d,   z_w = E_w(x_in)                 (unit length)
    w, O = F_w(x_in, z_w),      I~_s = w(I_s)                   (flow, occlusion, warped source)
    z_id = E_id(chip(I_s))                                      (dlib's ResNet, frozen)
    I~_y = G_r(w(E_r(I_s)) * O, I~_s, z_id)                     (fusion blocks, Eq. 1-2)

E_id is not one of the method's networks: it is dlib's face ResNet from the weights
registry (``dlib-resnet``), loaded when a person is encoded, so z_id is part of the person
state and the per-frame synthesis never runs it.

One-shot with K > 1 source frames: the warp reads one source frame, the *medoid* of the K
(the frame whose landmark image is nearest, in L1, to all the others: the most typical pose
of the person), and z_id is the normalised mean of the K frames' identity descriptors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.config.metaportrait import GENERATOR_MODULES, MetaPortraitModelConfig
from talkinghead.models.flow_network import FlowNetwork
from talkinghead.models.inference_model import InferenceModel, StateTensor
from talkinghead.models.motion_encoder import MotionEncoder
from talkinghead.models.patch_discriminator import MultiScalePatchDiscriminator
from talkinghead.models.refinement_network import RefinementNetwork
from talkinghead.models.registry import MethodSpec, register_method
from talkinghead.models.warping import warp

METHOD = "metaportrait"


@dataclass
class WarpOutput:
    """What the warping network produces for one batch.

    Attributes:
        flow: (b, 2, s, s) displacement in normalised coordinates.
        occlusion: (b, 1, s, s) in (0, 1).
        warped: (b, 3, s, s) I~_s, the source image warped by the flow.
    """

    flow: torch.Tensor
    occlusion: torch.Tensor
    warped: torch.Tensor


def predict_warp(motion_encoder: nn.Module, flow_network: nn.Module, source_image: torch.Tensor,
                 source_landmarks: torch.Tensor, driving_landmarks: torch.Tensor, warp_size: int | None = None) -> WarpOutput:
    """x_in -> z_w -> (w, O) -> I~_s for (b, 3, s, s) sources and (b, c, s, s) landmark images.

    With ``warp_size`` < s, E_w and F_w read x_in at that size and the flow and occlusion are
    upsampled to s (the flow is in normalised units, so its values need no rescaling).
    """
    x_in = torch.cat([source_image, source_landmarks.to(source_image.dtype), driving_landmarks.to(source_image.dtype)], 1)
    size = source_image.shape[-1]
    if warp_size is not None and warp_size != size:
        # antialias: thin landmark lines must not vanish between samples
        x_in = F.interpolate(x_in, size=(warp_size, warp_size), mode="bilinear", align_corners=False, antialias=True)
    z_w = motion_encoder(x_in)
    flow, occlusion = flow_network(x_in, z_w)
    if flow.shape[-1] != size:
        flow = F.interpolate(flow, size=(size, size), mode="bilinear", align_corners=False)
        occlusion = F.interpolate(occlusion, size=(size, size), mode="bilinear", align_corners=False)
    return WarpOutput(flow=flow, occlusion=occlusion, warped=warp(source_image, flow))


def refine(refinement_network: nn.Module, source_features: torch.Tensor | None, warped: WarpOutput,
           z_id: torch.Tensor, source_image: torch.Tensor | None = None) -> torch.Tensor:
    """I~_y (b, 3, s, s) from the source features (or the source image), the warp and z_id (Eq. 1-2)."""
    return refinement_network(source_features, warped.flow, warped.occlusion, warped.warped, z_id,
                              source_image=source_image)


def chip_points(config: MetaPortraitModelConfig, batch: int, size: int, device, dtype=torch.float32) -> torch.Tensor:
    """(b, 5, 2) dlib alignment points in pixels of a (size, size) head crop (``config.id_chip_points``)."""
    fractions = torch.tensor(config.id_chip_points, device=device, dtype=dtype)  # (5, 2)
    return (fractions * size - 0.5)[None].expand(batch, -1, -1)


def identity_descriptor(id_network: nn.Module, images: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Unit-length dlib descriptors E_id of (b, 3, s, s) images in [-1, 1], aligned by (b, 5|68, 2) points.

    Differentiable in the images (L_id, Eq. 3, runs through it). Returns (b, 128).
    """
    from talkinghead.models.face_chip import extract_face_chips

    chips = extract_face_chips((images.float() + 1.0) * 127.5, points.float())  # (b, 3, 150, 150) in 0..255
    return F.normalize(id_network(chips), dim=1)


_IDENTITY_NETWORKS: dict[str, nn.Module] = {}


def identity_network(device: torch.device | str = "cpu") -> nn.Module:
    """dlib's face ResNet (frozen, from the weights registry), one copy per device.

    Raises:
        MissingWeightsError: the file is not installed; the message says how to install it.
    """
    key = str(device)
    if key not in _IDENTITY_NETWORKS:
        from talkinghead.models.dlib_resnet import DlibResNet

        _IDENTITY_NETWORKS[key] = DlibResNet.from_registry("MetaPortrait's identity code z_id").to(device)
    return _IDENTITY_NETWORKS[key]


def identity_code(id_network: nn.Module, config: MetaPortraitModelConfig, images: torch.Tensor) -> torch.Tensor:
    """z_id of (b, k, 3, s, s) source frames: the normalised mean of the K unit descriptors -> (b, id_dim)."""
    b, k, _, s, _ = images.shape
    flat = images.flatten(0, 1)
    descriptors = identity_descriptor(id_network, flat, chip_points(config, b * k, s, images.device))
    return F.normalize(descriptors.reshape(b, k, -1).mean(dim=1), dim=1)


def medoid_index(landmarks: torch.Tensor) -> torch.Tensor:
    """(b,) index of the frame whose landmark image is nearest (summed L1) to the others, of (b, k, c, s, s)."""
    flat = landmarks.flatten(2).float()  # (b, k, n)
    distances = torch.cdist(flat, flat, p=1).sum(dim=2)  # (b, k)
    return distances.argmin(dim=1)


def select_source(images: torch.Tensor, landmarks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The medoid source frame and its landmark image: (b, k, ...) -> (b, 3, s, s), (b, c, s, s)."""
    if images.ndim != 5 or landmarks.ndim != 5 or images.shape[:2] != landmarks.shape[:2]:
        raise ValueError(f"expected (b, k, c, h, w) images and landmarks, got {tuple(images.shape)} and "
                         f"{tuple(landmarks.shape)}")
    index = medoid_index(landmarks)
    rows = torch.arange(images.shape[0], device=images.device)
    return images[rows, index], landmarks[rows, index]


def build_networks(config: MetaPortraitModelConfig) -> dict[str, nn.Module]:
    """The four MetaPortrait networks, by their config/checkpoint names."""
    lc = config.landmark_channels
    x_in = 3 + 2 * lc
    code = config.motion_encoder.code_dim
    return {
        "motion_encoder": MotionEncoder(config.motion_encoder, x_in),  # E_w
        "flow_network": FlowNetwork(config.flow_network, x_in, code),  # F_w
        "refinement_network": RefinementNetwork(config.refinement_network, config.id_dim),  # G_r
        "discriminator": MultiScalePatchDiscriminator(
            config.discriminator, 3 + (lc if config.discriminator.use_landmarks else 0)
        ),  # D
    }


def parameter_counts(networks: dict[str, nn.Module]) -> dict[str, int]:
    """Number of parameters of every network."""
    return {name: sum(p.numel() for p in net.parameters()) for name, net in networks.items()}


def source_feature_shape(config: MetaPortraitModelConfig) -> tuple[int, int, int]:
    """(C, s', s') of the refinement network's source features."""
    ref = config.refinement_network
    channels = min(ref.base_channels * 2**ref.num_down_blocks, ref.max_channels)
    side = config.image_size // 2**ref.num_down_blocks
    return channels, side, side


class MetaPortraitModel(InferenceModel):
    """MetaPortrait's generator side for inference: encode a person once, then warp and refine frames.

    Holds E_w, F_w and G_r. The person state is the (medoid) source frame, its landmark
    image, its refinement-encoder features and z_id.

    Args:
        config: the architecture.
    """

    method = METHOD

    def __init__(self, config: MetaPortraitModelConfig):
        super().__init__(config)
        networks = build_networks(config)
        for name in GENERATOR_MODULES:
            self.add_module(name, networks[name])

    def synthesis_networks(self) -> list[str]:
        return list(GENERATOR_MODULES)

    @classmethod
    def state_spec(cls, config: MetaPortraitModelConfig) -> dict[str, StateTensor]:
        s, lc = config.image_size, config.landmark_channels
        return {
            "source_image": StateTensor((3, s, s), "I_s: the source frame the flow warps (the medoid of K frames)"),
            "source_landmarks": StateTensor((lc, s, s), "L_s: the source frame's dense landmark image"),
            "source_features": StateTensor(source_feature_shape(config), "E_r(I_s): refinement-encoder features warped per frame"),
            "z_id": StateTensor((config.id_dim,), "z_id: dlib ResNet identity code of the source frames (unit length)"),
        }

    @torch.no_grad()
    def encode(self, source_images: torch.Tensor, source_landmarks: torch.Tensor) -> dict[str, torch.Tensor]:
        """The person state of (b, k, 3, s, s) frames and their (b, k, c, s, s) landmark images.

        Raises:
            MissingWeightsError: dlib's face ResNet (for z_id) is not installed.
        """
        image, landmarks = select_source(source_images, source_landmarks)
        device = image.device
        z_id = identity_code(identity_network(device), self.config, source_images)
        return {
            "source_image": image,
            "source_landmarks": landmarks,
            "source_features": self.refinement_network.encode_source(image),
            "z_id": z_id.to(image.dtype),
        }

    def forward(self, landmarks: torch.Tensor, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(b, 3, s, s) frames for driving landmark images (b, c, s, s) and a batched person state."""
        warped = predict_warp(self.motion_encoder, self.flow_network, state["source_image"],
                              state["source_landmarks"], landmarks, self.config.warp_size)
        return refine(self.refinement_network, state["source_features"], warped, state["z_id"])


register_method(
    MethodSpec(
        name=METHOD,
        label="MetaPortrait",
        model_config=MetaPortraitModelConfig,
        build_networks=build_networks,
        inference_model=MetaPortraitModel,
        inference_networks=tuple(GENERATOR_MODULES),
    )
)
