"""Schema of MetaPortrait's one-shot base model, its training and subject fine-tuning (MetaPortrait §3.1).

The architecture (:class:`MetaPortraitModelConfig`) is kept apart from how it is trained
(:class:`MetaPortraitStageConfig`), so a checkpoint carries the arguments its networks are
rebuilt from. Every default is defined once, here; ``configs/metaportrait/`` only overrides.

Networks, by their config/checkpoint names (paper symbols):

    motion_encoder      E_w   x_in = I_s ++ L_s ++ L_d -> z_w (unit length)
    flow_network        F_w   (x_in, z_w) -> flow w and occlusion map
    refinement_network  G_r   ID-preserving refinement: source features warped by w, fusion
                              blocks with z_id = E_id(I_s) (MetaPortrait Eq. 1-2) -> output I~_y
    discriminator       D     multi-scale patch discriminator (pix2pixHD)
    mouth_generator     -     paints teeth and cavity in an opening mouth at the output size
                              (not in the paper; issue 24; only with ``model.mouth.enabled``)
    mouth_discriminator -     patch discriminator of the mouth crops (the ``mouth`` stage)

E_id is dlib's face ResNet (``dlib-resnet``), a frozen pretrained network from the weights
registry; it is not part of a MetaPortrait release.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from talkinghead.config.base import register_config
from talkinghead.config.mouth import MouthGeneratorConfig
from talkinghead.config.landmark_styles import LandmarkStyle, has_mesh_fields, style_channels
from talkinghead.config.training import check_module_names, check_stage_names, DataConfig, FinetuneConfigBase, LossWeightsBase, StageSchedule, TrainerConfig

FACE_MODULES = ("motion_encoder", "flow_network", "refinement_network", "discriminator")
MOUTH_MODULES = ("mouth_generator", "mouth_discriminator")
MODULE_NAMES = FACE_MODULES + MOUTH_MODULES
GENERATOR_MODULES = ("motion_encoder", "flow_network", "refinement_network", "mouth_generator")
WARP_MODULES = ("motion_encoder", "flow_network")
StageName = Literal["warp_pretrain", "full", "meta", "mouth"]
ID_DIM = 128  # dlib's face descriptor
# Where dlib's five alignment points (outer/inner eye corners, nose base; see
# models/face_chip.py) sit in a prepared head crop, as fractions of the crop side: the mean
# over the 3600 frames of the 90 clips of train_videos + data/real prepared with the
# default head crop (scale 1.8), per-point standard deviation 0.03-0.06. z_id and L_id are
# computed from the face chip these points define, so encode needs no landmark points
# (tests/losses/test_face_regions.py checks them against a real clip).
ID_CHIP_POINTS = (
    (0.6398, 0.4577),
    (0.5530, 0.4634),
    (0.3586, 0.4628),
    (0.4434, 0.4657),
    (0.4981, 0.6070),
)


@dataclass
class MotionEncoderConfig:
    """E_w: stride-2 3x3 convolutions with instance norm, then a linear layer to a unit-length code.

    Args:
        base_channels: feature maps of the first conv (official: 64), doubled by every conv.
        max_channels: cap on the feature maps (official: 512).
        num_down_blocks: stride-2 convolutions (official: 6).
        code_dim: size of z_w (official: 512).
    """

    base_channels: int = 64
    max_channels: int = 512
    num_down_blocks: int = 6
    code_dim: int = 512


@dataclass
class FlowNetworkConfig:
    """F_w: an hourglass (U-Net) whose every block is modulated by z_w through AdaIN.

    Args:
        base_channels: feature maps at full resolution.
        max_channels: cap on the feature maps.
        num_down_blocks: downsampling steps (as many upsampling steps follow).
    """

    base_channels: int = 64
    max_channels: int = 512
    num_down_blocks: int = 5


@dataclass
class RefinementNetworkConfig:
    """G_r: a source encoder, then a cascade of ID-preserving fusion blocks on the warped features.

    Args:
        base_channels: feature maps at full resolution.
        max_channels: cap on the feature maps.
        num_down_blocks: stride-2 steps of the source encoder (the warped features live at
            ``image_size / 2**num_down_blocks``).
        num_bottleneck_blocks: fusion residual blocks at the lowest resolution.
        film_hidden_channels: feature maps of the FiLM branch that reads the warped image.
        residual: predict a correction added to the warped source I~_s (its last conv starts
            at zero, so an untrained G_r returns I~_s) instead of the frame itself (the paper).
            For short trainings: the full stage starts from the pre-trained warp's quality.
    """

    base_channels: int = 64
    max_channels: int = 512
    num_down_blocks: int = 3
    num_bottleneck_blocks: int = 2
    film_hidden_channels: int = 64
    residual: bool = False


@dataclass
class PatchDiscriminatorConfig:
    """D: pix2pixHD's multi-scale patch discriminator.

    Args:
        base_channels: feature maps of the first layer (pix2pixHD: 64).
        max_channels: cap on the feature maps.
        num_layers: stride-2 4x4 convolutions per scale.
        num_scales: discriminators, each on the image downsampled 2x more (pix2pixHD: 2-3).
        use_landmarks: also show D the driving landmark image (a conditional D).
    """

    base_channels: int = 64
    max_channels: int = 512
    num_layers: int = 3
    num_scales: int = 2
    use_landmarks: bool = True


@dataclass
class MetaPortraitModelConfig:
    """All MetaPortrait networks.

    Args:
        image_size: side of the square frames (official: 256, and 512 with the super-resolution
            stage this project does not implement).
        landmark_channels: channels of one landmark image (3 for drawings, 7 for ``dense_mesh``).
        landmark_style: rasteriser of the landmark images (``dense``: every mesh connection a
            line in its own colour, §3.1; ``fsth`` works too; ``dense_mesh``: the ``dense``
            drawing plus the mesh's coordinate fields, from which the warp takes the
            piecewise-affine landmark warp as a prior flow that F_w corrects; not in the paper).
        source_slots: source frames a person state keeps; every driving frame is warped from
            the one whose landmarks are nearest its own (K > slots: the slots are spread over
            the K poses by farthest-point sampling from the medoid).
        id_dim: size of z_id (dlib's descriptor: 128).
        id_chip_points: dlib's five alignment points in a head crop, fractions of its side (the
            face chip z_id and L_id are computed from).
        warp_scale: E_w and F_w read x_in resized by this factor and their flow and occlusion
            are upsampled back (FOMM's dense-motion scale; 1 = the paper, 0.5 quarters their cost).
        mouth: the mouth-interior generator (``enabled: true`` adds ``mouth_generator`` and
            ``mouth_discriminator``, trained by a ``mouth`` stage; not in the paper).
    """

    image_size: int = 256
    landmark_channels: int = 3
    landmark_style: LandmarkStyle = "dense"
    source_slots: int = 4
    id_dim: int = ID_DIM
    id_chip_points: list[tuple[float, float]] = field(default_factory=lambda: [tuple(p) for p in ID_CHIP_POINTS])
    warp_scale: float = 1.0
    motion_encoder: MotionEncoderConfig = field(default_factory=MotionEncoderConfig)
    flow_network: FlowNetworkConfig = field(default_factory=FlowNetworkConfig)
    refinement_network: RefinementNetworkConfig = field(default_factory=RefinementNetworkConfig)
    discriminator: PatchDiscriminatorConfig = field(default_factory=PatchDiscriminatorConfig)
    mouth: MouthGeneratorConfig = field(default_factory=MouthGeneratorConfig)

    @property
    def mesh_prior(self) -> bool:
        """Whether the warp starts from the landmark images' mesh correspondence."""
        return has_mesh_fields(self.landmark_style)

    @property
    def warp_input_channels(self) -> int:
        """Channels of x_in = I_s ++ L_s ++ L_d (++ the prior-warped source with the mesh prior)."""
        return 3 + 2 * self.landmark_channels + (3 if self.mesh_prior else 0)

    @property
    def warp_size(self) -> int:
        """Side of the x_in that E_w and F_w read."""
        return int(round(self.image_size * self.warp_scale))

    def __post_init__(self):
        if self.landmark_channels != style_channels(self.landmark_style):
            raise ValueError(
                f"model.landmark_channels={self.landmark_channels} does not match model.landmark_style="
                f"{self.landmark_style!r}, whose images have {style_channels(self.landmark_style)} channels"
            )
        if self.source_slots < 1:
            raise ValueError(f"model.source_slots must be >= 1, got {self.source_slots}")
        if not 0.0 < self.warp_scale <= 1.0:
            raise ValueError(f"model.warp_scale must be in (0, 1], got {self.warp_scale}")
        if self.warp_size % (2**self.flow_network.num_down_blocks):
            raise ValueError(
                f"model.image_size * model.warp_scale = {self.warp_size} is not divisible by "
                f"2**{self.flow_network.num_down_blocks} (model.flow_network.num_down_blocks); change either"
            )
        checks = {
            "refinement_network": self.refinement_network.num_down_blocks,
        }
        for name, blocks in checks.items():
            if blocks < 1:
                raise ValueError(f"model.{name}: needs at least one resolution step, got {blocks}")
            if self.image_size % (2**blocks):
                raise ValueError(
                    f"model.image_size={self.image_size} is not divisible by 2**{blocks} (model.{name} has "
                    f"{blocks} resolution steps); pick a size such as {(self.image_size // 2**blocks + 1) * 2**blocks}"
                )
        if self.warp_size // 2**self.motion_encoder.num_down_blocks < 2:
            raise ValueError(
                f"model.motion_encoder.num_down_blocks={self.motion_encoder.num_down_blocks} leaves less than 2x2 "
                f"pixels of its {self.warp_size} px input for instance norm; use fewer blocks"
            )
        if self.motion_encoder.num_down_blocks < 1 or self.discriminator.num_layers < 1:
            raise ValueError("model.motion_encoder.num_down_blocks and model.discriminator.num_layers must be >= 1")
        if self.discriminator.num_scales < 1:
            raise ValueError("model.discriminator.num_scales must be >= 1")
        if len(self.id_chip_points) != 5 or any(len(p) != 2 for p in self.id_chip_points):
            raise ValueError("model.id_chip_points: five (x, y) pairs, fractions of the crop side")
        self.id_chip_points = [(float(x), float(y)) for x, y in self.id_chip_points]


@dataclass
class MetaPortraitLossWeights(LossWeightsBase):
    """Weights of the terms of MetaPortrait Eq. 4 (0 turns a term off); None takes the stage's default.

    Official code (MetaPortrait base model): perceptual 10 (5 VGG layers x 4 scales),
    feature matching 10, LSGAN 1, eye 50, mouth 50, ID 20.

    Args:
        warp_perceptual: perceptual loss between the warped source I~_s and the driving frame (L^VGG_w).
        perceptual: lambda_r, perceptual loss between the refined output I~_y and the driving frame.
        identity: lambda_id, 1 - cos(E_id(I~_y), E_id(I_s)) (MetaPortrait Eq. 3).
        eye: lambda_eye, L1 on the eye regions (masks from the driving frame's landmarks).
        mouth: lambda_mouth, L1 on the mouth region.
        gan: lambda_adv, LSGAN generator loss on every scale of D.
        feature_matching: L1 between D's features of the output and of the driving frame.
    """

    warp_perceptual: Optional[float] = None
    perceptual: Optional[float] = None
    identity: Optional[float] = None
    eye: Optional[float] = None
    mouth: Optional[float] = None
    gan: Optional[float] = None
    feature_matching: Optional[float] = None


WARP_WEIGHTS = dict(warp_perceptual=10.0)
FULL_WEIGHTS = dict(
    warp_perceptual=10.0, perceptual=10.0, identity=20.0, eye=50.0, mouth=50.0, gan=1.0, feature_matching=10.0
)
# Meta-learning (§3.2): the full objective with the adversarial terms off, as the authors train it.
META_WEIGHTS = dict(FULL_WEIGHTS, gan=0.0, feature_matching=0.0)
# The meta stage learns the initialisation of what subject fine-tuning tunes (its default
# modules, less D: no adversarial term in the inner loop).
# The mouth stage trains the mouth generator alone on mouth crops of the full-size frames:
# L1 ("mouth", 50 as the full stage's mouth term) and the perceptual term on the crop, LSGAN
# and feature matching of its own D (the full stage's weights).
MOUTH_WEIGHTS = dict(
    warp_perceptual=0.0, perceptual=10.0, identity=0.0, eye=0.0, mouth=50.0, gan=1.0, feature_matching=10.0
)
STAGE_MODULES = {"warp_pretrain": list(WARP_MODULES), "full": list(FACE_MODULES), "meta": ["refinement_network"],
                 "mouth": list(MOUTH_MODULES)}
STAGE_WEIGHTS = {"warp_pretrain": WARP_WEIGHTS, "full": FULL_WEIGHTS, "meta": META_WEIGHTS, "mouth": MOUTH_WEIGHTS}
# Reptile's outer step size. The authors give an outer learning rate of 2e-5 next to an inner
# Adam lr of 2e-4 and 2 inner steps; read as a learning rate on Reptile's gradient
# (theta - theta~) / (k * inner lr), that is epsilon = 2e-5 / (2 * 2e-4) = 0.05 of the way
# to the adapted weights per outer step.
META_EPSILON = 0.05
META_INNER_STEPS = 2
MP_BETAS = (0.5, 0.999)  # pix2pixHD / official code
MP_MAX_GRAD_NORM = 0.3  # official gradient clipping


@dataclass
class MetaPortraitStageConfig(StageSchedule):
    """One named MetaPortrait training stage; it starts from the previous stage's weights.

    Args:
        name: ``warp_pretrain`` (E_w + F_w with the warped-image perceptual loss), ``full``
            (refinement network and D join; every term of MetaPortrait Eq. 4) or ``meta`` (Reptile, §3.2:
            every episode of a step is one task, one identity's support sample; ``k`` inner
            Adam steps at ``lr`` on a copy, then the initialisation moves ``epsilon`` of the
            way to the adapted weights; ``batch_size`` tasks per outer step over all processes).
        loss_weights: the terms of MetaPortrait Eq. 4 (None = the stage's defaults; ``meta``: the full
            stage's with the adversarial terms off, as the authors meta-train).
        warp_lr_ratio: learning rate of E_w and F_w relative to ``lr`` in the full stage
            (official: 0.1) and in the meta stage's inner loop when they are meta-trained.
        inner_steps: ``meta`` only: Adam steps per task (authors: 2).
        epsilon: ``meta`` only: Reptile's outer step, theta <- theta + epsilon (theta~ - theta),
            in (0, 1] (see ``META_EPSILON`` for how it follows from the authors' settings).
    """

    name: StageName = "full"
    betas: tuple[float, float] = MP_BETAS
    lr: float = 2e-4
    max_grad_norm: float = MP_MAX_GRAD_NORM
    warmup_steps: int = 0
    decay_factor: float = 1.0
    loss_weights: Optional[MetaPortraitLossWeights] = None
    warp_lr_ratio: float = 0.1
    inner_steps: int = META_INNER_STEPS
    epsilon: float = META_EPSILON

    def __post_init__(self):
        super().__post_init__()
        if self.modules is None:
            self.modules = list(STAGE_MODULES[self.name])
        check_module_names(self.modules, MODULE_NAMES, f"stage {self.name}")
        if self.name == "warp_pretrain" and set(self.modules) - set(WARP_MODULES):
            raise ValueError(f"stage warp_pretrain trains only {list(WARP_MODULES)}, got {self.modules}")
        if (self.name == "mouth") != bool(set(self.modules) & set(MOUTH_MODULES)) or (
                self.name == "mouth" and set(self.modules) - set(MOUTH_MODULES)):
            raise ValueError(f"stage {self.name}: {list(MOUTH_MODULES)} train in the mouth stage and only there, "
                             f"got {self.modules}")
        self.loss_weights = (self.loss_weights or MetaPortraitLossWeights()).resolved(STAGE_WEIGHTS[self.name])
        if self.warp_lr_ratio < 0:
            raise ValueError(f"stage {self.name}: warp_lr_ratio must be >= 0")
        if self.name == "meta":
            if "discriminator" in self.modules:
                raise ValueError("stage meta: the inner loop has no adversarial term; drop discriminator from modules")
            if self.inner_steps < 1:
                raise ValueError(f"stage meta: inner_steps must be >= 1, got {self.inner_steps}")
            if not 0.0 < self.epsilon <= 1.0:
                raise ValueError(f"stage meta: epsilon must be in (0, 1], got {self.epsilon}")


@register_config("metaportrait")
@dataclass
class MetaPortraitTrainConfig:
    """A complete MetaPortrait training run: data, model, stages in order, and the trainer.

    Args:
        method: the method this config trains (checked against checkpoints).
        data: the prepared dataset (dense landmarks).
        model: the architecture.
        stages: stages run in order (the authors: warp_pretrain, then full).
        trainer: how the trainer runs.
    """

    method: Literal["metaportrait"] = "metaportrait"
    data: DataConfig = field(default_factory=DataConfig)
    model: MetaPortraitModelConfig = field(default_factory=MetaPortraitModelConfig)
    stages: list[MetaPortraitStageConfig] = field(
        default_factory=lambda: [
            MetaPortraitStageConfig(name="warp_pretrain", epochs=10, k=1),
            MetaPortraitStageConfig(name="full", epochs=20, k=1),
        ]
    )
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self):
        check_stage_names(self.stages)
        if any(stage.name == "mouth" for stage in self.stages) and not self.model.mouth.enabled:
            raise ValueError("a mouth stage trains the mouth generator: set model.mouth.enabled=true")


@register_config("metaportrait_finetune")
@dataclass
class MetaPortraitFinetuneConfig(FinetuneConfigBase):
    """Plain subject fine-tuning: the person state is computed once, then the networks are tuned
    by reconstructing the subject's frames from one another with the full stage's objective.

    The options every method shares are :class:`FinetuneConfigBase`'s.

    Args:
        modules: networks tuned (default: the refinement network and D; E_w and F_w stay).
        loss_weights: None = the full stage's defaults.
        warp_lr_ratio: learning rate of E_w and F_w relative to ``lr`` when they are tuned.
    """

    steps: int = 50
    batch_size: int = 4
    lr: float = 1e-4
    betas: tuple[float, float] = MP_BETAS
    max_grad_norm: float = MP_MAX_GRAD_NORM
    modules: list[str] = field(default_factory=lambda: ["refinement_network", "discriminator"])
    loss_weights: Optional[MetaPortraitLossWeights] = None
    warp_lr_ratio: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        self.loss_weights = (self.loss_weights or MetaPortraitLossWeights()).resolved(FULL_WEIGHTS)
        check_module_names(self.modules, FACE_MODULES, "modules")
