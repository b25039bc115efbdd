"""The MetaPortrait one-shot base model (MetaPortrait §3.1): dense-landmark warping + ID-preserving refinement.

The networks are built from one :class:`MetaPortraitModelConfig`. The functions below take
the networks as arguments (they may be DDP- or compile-wrapped during training), so the
trainer and the inference model run the same equations:

    x_in = I_s ++ L_s ++ L_d,   z_w = E_w(x_in)                 (unit length)
    w, O = F_w(x_in, z_w),      I~_s = w(I_s)                   (flow, occlusion, warped source)
    z_id = E_id(chip(I_s))                                      (dlib's ResNet, frozen)
    I~_y = G_r(w(E_r(I_s)) * O, I~_s, z_id)                     (fusion blocks, MetaPortrait Eq. 1-2)

E_id is not one of the method's networks: it is dlib's face ResNet from the weights
registry (``dlib-resnet``), loaded when a person is encoded, so z_id is part of the person
state and the per-frame synthesis never runs it.

With the ``dense_mesh`` landmark style (not in the paper), the landmark images carry the
face mesh's coordinate fields, and the warp starts from the correspondence they give (the
classical piecewise-affine landmark warp): F_w reads the prior-warped source as well and
predicts a correction to that flow. Its flow head starts at zero, so an untrained model
warps exactly as the ``landmark-warp`` reference does. This is what makes the model
trainable on a CPU budget: the paper's F_w must learn large head motions from drawings.

K > 1 source frames: training warps the *medoid* of the K (the frame whose landmarks are
nearest, in L1, to all the others: the most typical pose). A person state keeps up to
``source_slots`` frames (spread over the K poses) and every driving frame is warped from the
slot whose landmarks are nearest its own, as the reference methods choose their frame;
z_id is the normalised mean of the K frames' identity descriptors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.config.landmark_styles import DRAWING, FORWARD_FIELD, INVERSE_FIELD, STYLE_CHANNELS
from talkinghead.config.metaportrait import GENERATOR_MODULES, MetaPortraitModelConfig
from talkinghead.models.flow_network import FlowNetwork
from talkinghead.models.inference_model import InferenceModel, OutputWarp, StateTensor
from talkinghead.models.motion_encoder import MotionEncoder
from talkinghead.models.mouth_generator import MouthGenerator
from talkinghead.models.mouth_interior import MouthInterior
from talkinghead.models.output_compose import compose_at_output
from talkinghead.models.patch_discriminator import MultiScalePatchDiscriminator
from talkinghead.models.refinement_network import RefinementNetwork
from talkinghead.models.registry import MethodSpec, register_method
from talkinghead.models.warping import correspondence_flow, despeckle_flow, warp

METHOD = "metaportrait"
FACE_GENERATORS = ("motion_encoder", "flow_network", "refinement_network")  # run for every frame at s


@dataclass
class WarpOutput:
    """What the warping network produces for one batch.

    Attributes:
        flow: (b, 2, s, s) displacement in normalised coordinates (prior + correction with the mesh prior).
        occlusion: (b, 1, s, s) in (0, 1).
        warped: (b, 3, s, s) I~_s, the source image warped by the flow.
    """

    flow: torch.Tensor
    occlusion: torch.Tensor
    warped: torch.Tensor


def predict_warp(motion_encoder: nn.Module, flow_network: nn.Module, source_image: torch.Tensor,
                 source_landmarks: torch.Tensor, driving_landmarks: torch.Tensor, warp_size: int | None = None,
                 mesh_prior: bool = False) -> WarpOutput:
    """x_in -> z_w -> (w, O) -> I~_s for (b, 3, s, s) sources and (b, c, s, s) landmark images.

    With ``warp_size`` < s, E_w and F_w read x_in at that size and the flow and occlusion are
    upsampled to s (the flow is in normalised units, so its values need no rescaling). With
    ``mesh_prior`` (``dense_mesh`` landmark images), x_in also holds the source warped by
    the mesh correspondence, and F_w's flow is added to that correspondence.
    """
    dtype = source_image.dtype
    parts = [source_image, source_landmarks.to(dtype), driving_landmarks.to(dtype)]
    prior = None
    if mesh_prior:
        prior = despeckle_flow(correspondence_flow(source_landmarks[:, INVERSE_FIELD].to(dtype),
                                                   driving_landmarks[:, FORWARD_FIELD].to(dtype)))
        parts.append(warp(source_image, prior))
    x_in = torch.cat(parts, 1)
    size = source_image.shape[-1]
    if warp_size is not None and warp_size != size:
        # antialias: thin landmark lines must not vanish between samples
        x_in = F.interpolate(x_in, size=(warp_size, warp_size), mode="bilinear", align_corners=False, antialias=True)
    z_w = motion_encoder(x_in)
    flow, occlusion = flow_network(x_in, z_w)
    if flow.shape[-1] != size:
        flow = F.interpolate(flow, size=(size, size), mode="bilinear", align_corners=False)
        occlusion = F.interpolate(occlusion, size=(size, size), mode="bilinear", align_corners=False)
    if prior is not None:
        flow = despeckle_flow(flow + prior)
    return WarpOutput(flow=flow, occlusion=occlusion, warped=warp(source_image, flow))


def refine(refinement_network: nn.Module, source_features: torch.Tensor | None, warped: WarpOutput,
           z_id: torch.Tensor, source_image: torch.Tensor | None = None) -> torch.Tensor:
    """I~_y (b, 3, s, s) from the source features (or the source image), the warp and z_id (MetaPortrait Eq. 1-2)."""
    return refinement_network(source_features, warped.flow, warped.occlusion, warped.warped, z_id,
                              source_image=source_image)


def chip_points(config: MetaPortraitModelConfig, batch: int, size: int, device, dtype=torch.float32) -> torch.Tensor:
    """(b, 5, 2) dlib alignment points in pixels of a (size, size) head crop (``config.id_chip_points``)."""
    fractions = torch.tensor(config.id_chip_points, device=device, dtype=dtype)  # (5, 2)
    return (fractions * size - 0.5)[None].expand(batch, -1, -1)


def identity_descriptor(id_network: nn.Module, images: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Unit-length dlib descriptors E_id of (b, 3, s, s) images in [-1, 1], aligned by (b, 5|68, 2) points.

    Differentiable in the images (L_id, MetaPortrait Eq. 3, runs through it). Returns (b, 128).
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


def pose_signature(landmarks: torch.Tensor) -> torch.Tensor:
    """(..., n) what landmark images are compared by, for (..., c, s, s) images.

    The inverse field of ``dense_mesh`` images (where every face point is: a landmark
    distance), else the drawing averaged to 16 x 16 (thin lines must overlap to compare).
    """
    lead, (c, h, w) = landmarks.shape[:-3], landmarks.shape[-3:]
    flat = landmarks.reshape(-1, c, h, w).float()
    if c == STYLE_CHANNELS["dense_mesh"]:
        signature = flat[:, INVERSE_FIELD]
    else:
        signature = F.adaptive_avg_pool2d(flat[:, DRAWING], 16)
    return signature.reshape(*lead, -1)


def medoid_index(landmarks: torch.Tensor) -> torch.Tensor:
    """(b,) index of the frame whose landmarks are nearest (summed L1) to the others, of (b, k, c, s, s)."""
    flat = pose_signature(landmarks)  # (b, k, n)
    distances = torch.cdist(flat, flat, p=1).sum(dim=2)  # (b, k)
    return distances.argmin(dim=1)


def slot_indices(landmarks: torch.Tensor, slots: int) -> torch.Tensor:
    """(b, slots) frames a person state keeps of (b, k, c, s, s) landmark images.

    K <= slots: every frame, repeated cyclically to fill the slots. K > slots: the medoid,
    then each time the frame farthest from those already kept (the poses spread out).
    """
    b, k = landmarks.shape[:2]
    if k <= slots:
        return (torch.arange(slots, device=landmarks.device) % k)[None].expand(b, -1)
    flat = pose_signature(landmarks)
    distances = torch.cdist(flat, flat, p=1)  # (b, k, k)
    rows = torch.arange(b, device=landmarks.device)
    chosen = [medoid_index(landmarks)]
    nearest = distances[rows, chosen[0]]  # (b, k) distance to the nearest kept frame
    for _ in range(slots - 1):
        chosen.append(nearest.argmax(dim=1))
        nearest = torch.minimum(nearest, distances[rows, chosen[-1]])
    return torch.stack(chosen, dim=1)


def nearest_slot(slot_landmarks: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """(b, slots) one-hot weights of the slot nearest (mean L1) each driving frame.

    Args:
        slot_landmarks: (b, slots, c, s, s) the person state's source landmark images.
        landmarks: (b, c, s, s) the driving landmark images.
    """
    distances = (pose_signature(slot_landmarks) - pose_signature(landmarks)[:, None]).abs().mean(dim=2)  # (b, slots)
    index = distances.argmin(dim=1, keepdim=True)
    slots = torch.arange(slot_landmarks.shape[1], device=landmarks.device)
    return (slots[None] == index).to(landmarks.dtype)  # one-hot by comparison: exports to ONNX


def take_slot(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(b, ...) the slot of (b, slots, ...) values that the one-hot (b, slots) weights pick."""
    shape = weights.shape + (1,) * (values.ndim - 2)
    return (values * weights.reshape(shape).to(values.dtype)).sum(dim=1)


def select_source(images: torch.Tensor, landmarks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The medoid source frame and its landmark image: (b, k, ...) -> (b, 3, s, s), (b, c, s, s)."""
    if images.ndim != 5 or landmarks.ndim != 5 or images.shape[:2] != landmarks.shape[:2]:
        raise ValueError(f"expected (b, k, c, h, w) images and landmarks, got {tuple(images.shape)} and "
                         f"{tuple(landmarks.shape)}")
    index = medoid_index(landmarks)
    rows = torch.arange(images.shape[0], device=images.device)
    return images[rows, index], landmarks[rows, index]


def build_networks(config: MetaPortraitModelConfig) -> dict[str, nn.Module]:
    """The four MetaPortrait networks (six with the mouth generator and its D), by their config/checkpoint names."""
    lc = config.landmark_channels
    x_in = config.warp_input_channels
    code = config.motion_encoder.code_dim
    networks = {
        "motion_encoder": MotionEncoder(config.motion_encoder, x_in),  # E_w
        "flow_network": FlowNetwork(config.flow_network, x_in, code),  # F_w
        "refinement_network": RefinementNetwork(config.refinement_network, config.id_dim),  # G_r
        "discriminator": MultiScalePatchDiscriminator(
            config.discriminator, 3 + (lc if config.discriminator.use_landmarks else 0)
        ),  # D
    }
    if config.mouth.enabled:
        networks["mouth_generator"] = MouthGenerator(config.mouth)
        # D of the mouth crops, which read the crop and its inner-lip mask
        networks["mouth_discriminator"] = MultiScalePatchDiscriminator(config.discriminator, 4)
    return networks


def source_feature_shape(config: MetaPortraitModelConfig) -> tuple[int, int, int]:
    """(C, s', s') of the refinement network's source features."""
    ref = config.refinement_network
    channels = min(ref.base_channels * 2**ref.num_down_blocks, ref.max_channels)
    side = config.image_size // 2**ref.num_down_blocks
    return channels, side, side


class MetaPortraitModel(InferenceModel):
    """MetaPortrait's generator side for inference: encode a person once, then warp and refine frames.

    Holds E_w, F_w and G_r. The person state is ``source_slots`` source frames, their
    landmark images and refinement-encoder features, and z_id.

    Args:
        config: the architecture.
    """

    method = METHOD

    def __init__(self, config: MetaPortraitModelConfig):
        super().__init__(config)
        networks = build_networks(config)
        for name in GENERATOR_MODULES:
            if name in networks:
                self.add_module(name, networks[name])

    def synthesis_networks(self) -> list[str]:
        return list(FACE_GENERATORS)

    def mouth_interior(self) -> MouthInterior | None:
        """The mouth generator as a :class:`MouthInterior` (None when the config has none)."""
        if not self.config.mouth.enabled:
            return None
        return MouthInterior(self.mouth_generator, self.config.mouth)

    @classmethod
    def state_spec(cls, config: MetaPortraitModelConfig) -> dict[str, StateTensor]:
        s, lc, m = config.image_size, config.landmark_channels, config.source_slots
        return {
            "source_image": StateTensor((m, 3, s, s), "I_s: source frames, one picked per driving frame by its landmarks"),
            "source_landmarks": StateTensor((m, lc, s, s), "L_s: the source frames' landmark images"),
            "source_features": StateTensor((m, *source_feature_shape(config)), "E_r(I_s): refinement-encoder features warped per frame"),
            "z_id": StateTensor((config.id_dim,), "z_id: dlib ResNet identity code of the source frames (unit length)"),
        }

    @torch.no_grad()
    def encode(self, source_images: torch.Tensor, source_landmarks: torch.Tensor) -> dict[str, torch.Tensor]:
        """The person state of (b, k, 3, s, s) frames and their (b, k, c, s, s) landmark images.

        Raises:
            MissingWeightsError: dlib's face ResNet (for z_id) is not installed.
        """
        if source_images.ndim != 5 or source_landmarks.ndim != 5 or source_images.shape[:2] != source_landmarks.shape[:2]:
            raise ValueError(f"expected (b, k, c, h, w) images and landmarks, got {tuple(source_images.shape)} and "
                             f"{tuple(source_landmarks.shape)}")
        b = source_images.shape[0]
        index = slot_indices(source_landmarks, self.config.source_slots)  # (b, m)
        rows = torch.arange(b, device=source_images.device)[:, None]
        images, landmarks = source_images[rows, index], source_landmarks[rows, index]  # (b, m, ...)
        features = self.refinement_network.encode_source(images.flatten(0, 1))
        z_id = identity_code(identity_network(images.device), self.config, source_images)
        return {
            "source_image": images,
            "source_landmarks": landmarks,
            "source_features": features.reshape(b, -1, *features.shape[1:]),
            "z_id": z_id.to(images.dtype),
        }

    def _warp_and_refine(self, landmarks: torch.Tensor, state: Mapping[str, torch.Tensor]
                         ) -> tuple[WarpOutput, torch.Tensor]:
        pick = nearest_slot(state["source_landmarks"], landmarks)  # (b, m)
        warped = predict_warp(self.motion_encoder, self.flow_network, take_slot(state["source_image"], pick),
                              take_slot(state["source_landmarks"], pick), landmarks, self.config.warp_size,
                              self.config.mesh_prior)
        return warped, refine(self.refinement_network, take_slot(state["source_features"], pick), warped,
                              state["z_id"])

    def forward(self, landmarks: torch.Tensor, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(b, 3, s, s) frames for driving landmark images (b, c, s, s) and a batched person state."""
        return self._warp_and_refine(landmarks, state)[1]

    def forward_parts(self, landmarks: torch.Tensor, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(b, 9, s, s): the refined frame I~_y (3), the warped source I~_s (3), the flow (2), the occlusion (1).

        What :func:`~talkinghead.models.output_compose.compose_at_output` renders a larger frame from.
        """
        warped, refined = self._warp_and_refine(landmarks, state)
        return torch.cat([refined, warped.warped, warped.flow.to(refined.dtype), warped.occlusion.to(refined.dtype)], 1)

    def output_warp(self) -> "MetaPortraitOutputWarp":
        """Frames at 256 or 512 px: the flow and occlusion warp the source kept at that size."""
        return MetaPortraitOutputWarp(self)


class MetaPortraitParts(InferenceModel):
    """:meth:`MetaPortraitModel.forward_parts` as an inference model (same person state), for any runtime.

    It holds the model's networks (shared, not copied), so exact rewrites of the model and
    its weights show through; its ``method`` differs from the model's so that runtime caches
    (ONNX exports) of frames and of parts never mix.
    """

    method = f"{METHOD}-parts"

    def __init__(self, model: MetaPortraitModel):
        super().__init__(model.config)
        self.model = model

    def synthesis_networks(self) -> list[str]:
        return ["model"]

    @classmethod
    def state_spec(cls, config: MetaPortraitModelConfig) -> dict[str, StateTensor]:
        return MetaPortraitModel.state_spec(config)

    def forward(self, landmarks: torch.Tensor, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(b, 9, s, s) parts (:meth:`MetaPortraitModel.forward_parts`)."""
        return self.model.forward_parts(landmarks, state)


class MetaPortraitOutputWarp(OutputWarp):
    """MetaPortrait at an output size S: the networks at s, the warp of the source frames kept at S.

    The person state's slots are the frames :func:`slot_indices` picks; :meth:`source_state`
    picks the same frames at S, and :meth:`compose` warps the slot each driving frame uses.
    """

    def __init__(self, model: MetaPortraitModel):
        self.model = model
        self.parts_model = MetaPortraitParts(model)

    def source_state(self, source_images: torch.Tensor, source_landmarks: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"source_image_full": (b, m, 3, S, S)}: the state's slot frames at S."""
        if source_images.ndim != 5 or source_images.shape[:2] != source_landmarks.shape[:2]:
            raise ValueError(f"expected (b, k, 3, S, S) images for (b, k, c, s, s) landmarks, got "
                             f"{tuple(source_images.shape)} and {tuple(source_landmarks.shape)}")
        index = slot_indices(source_landmarks, self.model.config.source_slots)  # (b, m)
        rows = torch.arange(source_images.shape[0], device=source_images.device)[:, None]
        return {"source_image_full": source_images[rows, index]}

    def enlarged_source_state(self, state: Mapping[str, torch.Tensor], size: int) -> dict[str, torch.Tensor]:
        """{"source_image_full": (m, 3, S, S)}: the state's (m, 3, s, s) slot frames, bicubic-enlarged."""
        enlarged = F.interpolate(state["source_image"].float(), size=(size, size), mode="bicubic", align_corners=False)
        return {"source_image_full": enlarged.clamp(-1.0, 1.0)}

    def compose(self, parts: torch.Tensor, landmarks: torch.Tensor, state: Mapping[str, torch.Tensor],
                full_state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(b, 3, S, S) from (b, 9, s, s) parts; the slot is picked again from the landmarks (cheap)."""
        pick = nearest_slot(state["source_landmarks"], landmarks)  # (b, m)
        source = take_slot(full_state["source_image_full"], pick).to(parts.dtype)
        refined, warped, flow, occlusion = parts.split([3, 3, 2, 1], dim=1)
        return compose_at_output(source, flow, occlusion, warped, refined)


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
