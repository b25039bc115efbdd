"""Schema of LSR training and subject fine-tuning (LSR §3, appendix A.1).

The architecture (:class:`LSRModelConfig`) is kept apart from how it is trained
(:class:`StageConfig`, :class:`TrainerConfig`), so a checkpoint carries the model
arguments it needs to be rebuilt and inference never needs the training settings.
Every default is defined once, here; presets in ``configs/lsr/`` only override.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from talkinghead.config.base import register_config
from talkinghead.config.training import ADAM_BETAS, check_module_names, check_stage_names, DataConfig, FinetuneConfigBase, LossWeightsBase, MAX_GRAD_NORM, StageSchedule, TrainerConfig

# Modules of the LSR model, by the names used in configs and checkpoints.
#   layout_encoder  E_l   style_encoder  E_s
#   layout_generator G_l  image_generator G_s   discriminator D
MODULE_NAMES = ("layout_encoder", "style_encoder", "layout_generator", "image_generator", "discriminator")
GENERATOR_MODULES = MODULE_NAMES[:4]
StageName = Literal["layout_pretrain", "full"]
# LSR Table 2's ablation variants (§4.4): what synthesises the image.
Synthesis = Literal["layout", "landmarks", "oracle", "adain_unet"]
# The generator-side networks each variant runs (the others are built but stay untrained).
SYNTHESIS_NETWORKS = {
    "layout": GENERATOR_MODULES,
    "landmarks": ("style_encoder", "image_generator"),
    "oracle": ("style_encoder", "image_generator"),
    "adain_unet": ("layout_encoder", "layout_generator"),
}


@dataclass
class EncoderConfig:
    """E_l / E_s (A.1): residual blur-pool downsampling blocks, then a fully connected layer.

    Args:
        base_channels: feature maps of the first layer (authors: 32), doubled by every block.
        max_channels: cap on the feature maps (authors: 512).
        num_down_blocks: residual downsampling blocks (authors: 5).
        pooling: ``flatten`` feeds the whole final feature map to the fully connected layer
            (keeps where things are); ``mean`` averages it spatially first (fewer parameters).
    """

    base_channels: int = 32
    max_channels: int = 512
    num_down_blocks: int = 5
    pooling: Literal["flatten", "mean"] = "flatten"


@dataclass
class LayoutGeneratorConfig:
    """G_l (A.1): a U-Net of residual blocks with instance norm + AdaIN from z^l.

    Args:
        base_channels: feature maps of the outermost level (authors: 32).
        max_channels: feature maps of the innermost levels (authors: 512).
        num_down_blocks: blur-pool downsampling steps of the U-Net (bilinear up as many times).
        layout_channels: channels C of the predicted layout; during pre-training they are the
            segmentation classes (19 CelebAMask-HQ classes in the authors' settings).
        layout_activation: what G_s receives: ``softmax`` over the C channels (a soft
            segmentation in pre-training, a learned latent layout afterwards) or ``none``
            (raw logits).
    """

    base_channels: int = 32
    max_channels: int = 512
    num_down_blocks: int = 5
    layout_channels: int = 19
    layout_activation: Literal["softmax", "none"] = "softmax"


@dataclass
class ImageGeneratorConfig:
    """G_s (A.1): SPADE generator with instance norm.

    Args:
        base_channels: feature maps of the last layer (authors: 32; SPADE's nf).
        max_channels: feature maps of the first blocks (SPADE uses 16 * nf).
        spade_hidden_channels: feature maps inside every SPADE block (authors: 64).
        num_up_blocks: upsampling SPADE residual blocks; the generator starts from a
            ``image_size / 2**num_up_blocks`` square map computed from z^s.
        num_middle_blocks: SPADE residual blocks at the start resolution after the first.
    """

    base_channels: int = 32
    max_channels: int = 512
    spade_hidden_channels: int = 64
    num_up_blocks: int = 5
    num_middle_blocks: int = 2


@dataclass
class DiscriminatorConfig:
    """D (A.1): StyleGAN2 residual discriminator with the smallest width reduced to 32.

    Args:
        base_channels: feature maps at full resolution (authors: 32).
        max_channels: cap on the feature maps (StyleGAN2: 512).
        num_down_blocks: residual downsampling blocks; the last map is
            ``image_size / 2**num_down_blocks`` on a side.
        mbstd_group_size: minibatch standard-deviation group (StyleGAN2: 4).
        use_landmarks: also show D the target landmark image (concatenated to the RGB);
            the paper's D sees the image only.
    """

    base_channels: int = 32
    max_channels: int = 512
    num_down_blocks: int = 5
    mbstd_group_size: int = 4
    use_landmarks: bool = False


@dataclass
class LSRModelConfig:
    """All LSR networks. ``image_size`` must be divisible by ``2**num_down_blocks`` of every net.

    Args:
        image_size: side of the square frames the model trains on (authors: 224).
        landmark_channels: channels of the rasterised landmark image (3 for RGB drawings).
        latent_dim: size of z^l and z^s (authors: 512).
        landmark_style: rasteriser of the landmark image (``fsth`` or ``dense``).
        synthesis: what renders the image, for LSR Table 2's ablations (§4.4): ``layout``
            (LSR: G_s from G_l's layout and the landmarks), ``landmarks`` (+SPADE: G_s from the
            landmark image only), ``oracle`` (upper bound: G_s from the target's ground-truth
            segmentation and the landmarks; it cannot animate, as no oracle exists at
            inference) or ``adain_unet`` (baseline: G_l's AdaIN U-Net translating the landmarks
            to the image through its RGB head, FSTH-style).
    """

    image_size: int = 224
    landmark_channels: int = 3
    latent_dim: int = 512
    landmark_style: Literal["fsth", "dense"] = "fsth"
    synthesis: Synthesis = "layout"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    layout_generator: LayoutGeneratorConfig = field(default_factory=LayoutGeneratorConfig)
    image_generator: ImageGeneratorConfig = field(default_factory=ImageGeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self):
        checks = {
            "encoder": self.encoder.num_down_blocks,
            "layout_generator": self.layout_generator.num_down_blocks,
            "image_generator": self.image_generator.num_up_blocks,
            "discriminator": self.discriminator.num_down_blocks,
        }
        for name, blocks in checks.items():
            if blocks < 1:
                raise ValueError(f"model.{name}: needs at least one block, got {blocks}")
            if self.image_size % (2**blocks):
                raise ValueError(
                    f"model.image_size={self.image_size} is not divisible by 2**{blocks} "
                    f"(model.{name} has {blocks} resolution steps); pick a size such as "
                    f"{(self.image_size // 2**blocks + 1) * 2**blocks}"
                )


@dataclass
class LossWeights(LossWeightsBase):
    """Weights of every loss term (0 turns a term off).

    A term left unset (None) takes its stage's default (the authors' settings, see
    ``PRETRAIN_WEIGHTS`` / ``FULL_WEIGHTS``); terms a stage does not use default to 0. So
    ``loss_weights: {gan: 0}`` changes one term and keeps the others.

    Args:
        segmentation: cross-entropy between G_l's layout and the oracle segmentation (LSR Eq. 2).
        layout_rgb: lambda_R, perceptual loss on G_l's extra RGB output R_t (LSR Eq. 2).
        vgg19: VGG19 perceptual loss on the output (L_rec, §3.3).
        vggface: VGGFace perceptual loss on the output (L_rec, identity, §3.3).
        identity: cosine distance between VGGFace descriptors of output and target.
        l1: L1 loss on the output (L_rec, colour).
        gan: lambda_adv, non-saturating adversarial loss (LSR Eq. 4).
        latent_l2: lambda_L2, ||z^l||^2 + ||z^s||^2 (LSR Eq. 4).
    """

    segmentation: Optional[float] = None
    layout_rgb: Optional[float] = None
    vgg19: Optional[float] = None
    vggface: Optional[float] = None
    identity: Optional[float] = None
    l1: Optional[float] = None
    gan: Optional[float] = None
    latent_l2: Optional[float] = None


# Defaults of each stage, from the authors' settings (LSR A.1 and the issue's table).
PRETRAIN_WEIGHTS = dict(segmentation=10.0, layout_rgb=0.01)
FULL_WEIGHTS = dict(vgg19=0.1, vggface=0.002, identity=1.0, l1=1.0, gan=1.0, latent_l2=1.0)
R1_GAMMA = 10.0  # R1 weight (authors: 10)
R1_EVERY = 16  # lazy R1 interval (StyleGAN2)
STAGE_MODULES = {
    "layout_pretrain": ["layout_encoder", "layout_generator"],
    "full": list(MODULE_NAMES),
}


@dataclass
class StageConfig(StageSchedule):
    """One named LSR training stage. A stage starts from the previous stage's weights.

    The length, K, batch and optimiser schedule are :class:`StageSchedule`'s (authors: 2
    epochs of pre-training, 8 + 5 of the full pipeline, K = 4, batch 4, Adam lr 1e-3 with
    betas (0, 0.999), the LR decayed by 100x over the last epoch).

    Args:
        name: ``layout_pretrain`` (E_l + G_l with LSR Eq. 2) or ``full`` (all nets with LSR Eq. 4).
        loss_weights: weights of the loss terms (None = the stage's defaults).
        r1_gamma: R1 gradient penalty weight (authors: 10).
        r1_every: lazy regularisation: apply R1 every N discriminator steps, scaled by N.
    """

    name: StageName = "full"
    loss_weights: Optional[LossWeights] = None
    r1_gamma: float = R1_GAMMA
    r1_every: int = R1_EVERY

    def __post_init__(self):
        super().__post_init__()
        if self.modules is None:
            self.modules = list(STAGE_MODULES[self.name])
        check_module_names(self.modules, MODULE_NAMES, f"stage {self.name}")
        defaults = PRETRAIN_WEIGHTS if self.name == "layout_pretrain" else FULL_WEIGHTS
        self.loss_weights = (self.loss_weights or LossWeights()).resolved(defaults)
        if self.r1_every < 1:
            raise ValueError(f"stage {self.name}: r1_every must be >= 1")


@register_config("lsr")
@dataclass
class LSRTrainConfig:
    """A complete LSR training run: data, model, stages in order, and the trainer.

    Args:
        method: the method this config trains (checked against checkpoints).
        data: the prepared dataset.
        model: the architecture.
        stages: stages run in order (authors: layout_pretrain, then full).
        trainer: how the trainer runs.
    """

    method: Literal["lsr"] = "lsr"
    data: DataConfig = field(default_factory=DataConfig)
    model: LSRModelConfig = field(default_factory=LSRModelConfig)
    stages: list[StageConfig] = field(
        default_factory=lambda: [StageConfig(name="layout_pretrain", epochs=2), StageConfig(name="full", epochs=13)]
    )
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self):
        check_stage_names(self.stages)


@register_config("lsr_finetune")
@dataclass
class FinetuneConfig(FinetuneConfigBase):
    """Subject fine-tuning (§3.5): latents computed once, then G_l, G_s and D are tuned.

    The options every method shares are :class:`FinetuneConfigBase`'s.

    Args:
        modules: networks tuned (the paper: G_l, G_s and D); the encoders stay frozen.
        loss_weights: None = the full stage's defaults (the same objective, LSR Eq. 4).
        r1_gamma: R1 weight.
        r1_every: lazy R1 interval.
    """

    steps: int = 100
    batch_size: int = 4
    lr: float = 1e-4
    betas: tuple[float, float] = ADAM_BETAS
    max_grad_norm: float = MAX_GRAD_NORM
    perceptual: Literal["required", "auto", "none"] = "required"
    modules: list[str] = field(default_factory=lambda: ["layout_generator", "image_generator", "discriminator"])
    loss_weights: Optional[LossWeights] = None
    r1_gamma: float = R1_GAMMA
    r1_every: int = R1_EVERY

    def __post_init__(self):
        super().__post_init__()
        self.loss_weights = (self.loss_weights or LossWeights()).resolved(FULL_WEIGHTS)
        check_module_names(self.modules, MODULE_NAMES, "modules")
