"""Schema of FSTH, the few-shot adversarial talking-head model (FSTH §3, supplementary A.4).

The architecture (:class:`FSTHModelConfig`) is kept apart from how it is trained
(:class:`FSTHStageConfig`), so a checkpoint carries the arguments its networks are rebuilt
from. Every default is defined once, here; ``configs/fsth/`` only overrides.

Networks, by their config/checkpoint names (paper symbols):

    embedder       E(x, y; phi)           RGB ++ landmark image -> embedding e (N), K averaged (FSTH Eq. 1)
    generator      G(y, e; psi, P)        landmark image -> frame; AdaIN parameters psi_hat = P e
    discriminator  D(x, y, i; theta, W, w0, b)   V(x, y)^T (W_i + w0) + b (FSTH Eq. 5)

Variants (FSTH Table 1): FT is meta-trained with the embedding match term L_MCH (it makes
W_i match the embedder, so fine-tuning can start D from w0 + e_NEW); FF is trained without it
and used feed-forward. They differ only in ``loss_weights.match`` (and their length).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from talkinghead.config.base import register_config
from talkinghead.config.training import check_module_names, check_stage_names, DataConfig, FinetuneConfigBase, LossWeightsBase, StageSchedule, TrainerConfig

MODULE_NAMES = ("embedder", "generator", "discriminator")
GENERATOR_MODULES = MODULE_NAMES[:2]
# Fine-tuning's free person-specific parameters (§3.3): psi' (the generator's AdaIN
# parameters) and w' (the discriminator's realism vector).
SUBJECT_MODULES = ("subject_adain", "subject_realism")
StageName = Literal["meta"]


@dataclass
class EmbedderConfig:
    """E and the ConvNet part V of D (A.4): pre-activated residual downsampling blocks without norm.

    Args:
        base_channels: feature maps of the first block (paper: 64), doubled by every block.
        max_channels: cap on the feature maps (paper: 512); the embedding size N is this.
        num_down_blocks: residual downsampling blocks (paper: 6, from 256 to 4 px).
        attention_after: self-attention after this many downsampling blocks (paper: 3,
            at 32 x 32 for 256 px frames); 0 = none.
    """

    base_channels: int = 64
    max_channels: int = 512
    num_down_blocks: int = 6
    attention_after: int = 3


@dataclass
class GeneratorConfig:
    """G (A.4): residual down blocks (instance norm), bottleneck and up blocks (AdaIN), final AdaIN.

    Args:
        base_channels: feature maps of the first down block (paper: 64), doubled by each.
        max_channels: feature maps of the bottleneck (paper: 512).
        num_down_blocks: residual downsampling blocks (paper: 4); as many up blocks follow.
        num_bottleneck_blocks: AdaIN residual blocks at the lowest resolution (paper: 4).
        attention_before_down: self-attention before this down block, counted from 0
            (paper: before the last, 3; at 32 x 32 for 256 px); -1 = none.
        attention_after_up: self-attention after this many up blocks (paper: 2, at 64 x 64);
            0 = none.
    """

    base_channels: int = 64
    max_channels: int = 512
    num_down_blocks: int = 4
    num_bottleneck_blocks: int = 4
    attention_before_down: int = 3
    attention_after_up: int = 2


@dataclass
class ProjectionDiscriminatorConfig:
    """D (§3.2, A.4): V = the embedder's network plus one residual block at 4 x 4, projection head.

    Args:
        num_videos: columns of W, one per training video (a run whose split has more clips
            than this stops before training and says so).
        extra_blocks: residual blocks after the downsampling ones (paper: 1, at 4 x 4).
    """

    num_videos: int = 1024
    extra_blocks: int = 1


@dataclass
class FSTHModelConfig:
    """All FSTH networks.

    Args:
        image_size: side of the square frames (paper: 256 on VoxCeleb; LSR compares at 224).
        landmark_channels: channels of one landmark image.
        landmark_style: rasteriser of the landmark images (``fsth``: coloured iBUG parts, §3.1).
        embedder: E (and D's ConvNet part V, which has the same layout).
        generator: G.
        discriminator: D's projection head and extra block.
    """

    image_size: int = 256
    landmark_channels: int = 3
    landmark_style: Literal["fsth", "dense"] = "fsth"
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: ProjectionDiscriminatorConfig = field(default_factory=ProjectionDiscriminatorConfig)

    @property
    def embedding_dim(self) -> int:
        """N, the size of e and of the columns of W (the embedder's last width)."""
        e = self.embedder
        return min(e.base_channels * 2 ** (e.num_down_blocks - 1), e.max_channels)

    def __post_init__(self):
        e, g = self.embedder, self.generator
        if e.num_down_blocks < 1 or g.num_down_blocks < 1:
            raise ValueError("model.embedder.num_down_blocks and model.generator.num_down_blocks must be >= 1")
        for name, blocks in (("embedder", e.num_down_blocks), ("generator", g.num_down_blocks)):
            if self.image_size % 2**blocks or self.image_size // 2**blocks < 2:
                raise ValueError(
                    f"model.image_size={self.image_size} must be divisible by 2**{blocks} (model.{name}."
                    f"num_down_blocks) and leave at least a 2x2 map; pick another size or fewer blocks"
                )
        if not 0 <= e.attention_after <= e.num_down_blocks:
            raise ValueError(f"model.embedder.attention_after must be in [0, {e.num_down_blocks}]")
        if not -1 <= g.attention_before_down < g.num_down_blocks:
            raise ValueError(f"model.generator.attention_before_down must be in [-1, {g.num_down_blocks - 1}]")
        if not 0 <= g.attention_after_up <= g.num_down_blocks:
            raise ValueError(f"model.generator.attention_after_up must be in [0, {g.num_down_blocks}]")
        if self.discriminator.num_videos < 1 or self.discriminator.extra_blocks < 0:
            raise ValueError("model.discriminator.num_videos must be >= 1 and extra_blocks >= 0")


@dataclass
class FSTHLossWeights(LossWeightsBase):
    """Weights of the terms of FSTH Eq. 3-4 (0 turns a term off); None takes the default.

    FSTH §3.4: L_CNT = 1.5e-1 VGG19 + 2.5e-2 VGGFace (L1 between the activations of
    Conv1,6,11,20,29 of VGG19 and Conv1,6,11,18,25 of VGGFace, i.e. relu1_1 ... relu5_1),
    L_FM weight 10, L_MCH weight 10. (The issue quoted 80 for L_MCH; the paper's text
    says "for L_MCH we also set the weight to 10", which is what is used here.)

    Args:
        vgg19: VGG19 content term.
        vggface: VGGFace content term.
        content_fallback: an image-pyramid L1 used in place of the VGG19 term when VGG19 is
            not installed (``perceptual: auto``); the project's offline fallback.
        gan: the realism score term -D(x_hat) (hinge generator loss).
        feature_matching: L1 between D's activations after each residual block, fake vs real.
        match: L_MCH, L1 between every per-frame embedding E(x_i(s_k)) and W_i (FT; 0 = FF).
    """

    vgg19: Optional[float] = None
    vggface: Optional[float] = None
    content_fallback: Optional[float] = None
    gan: Optional[float] = None
    feature_matching: Optional[float] = None
    match: Optional[float] = None


META_WEIGHTS = dict(vgg19=0.15, vggface=0.025, content_fallback=1.0, gan=1.0, feature_matching=10.0, match=10.0)
FINETUNE_WEIGHTS = dict(META_WEIGHTS, match=0.0)  # FSTH Eq. 9: no embedder, no W_i, so no L_MCH
FSTH_BETAS = (0.0, 0.9)  # not given in FSTH; SAGAN's TTUR, which FSTH follows for the two learning rates
D_LR_RATIO = 4.0  # D at 2e-4 when E and G are at 5e-5 (§3.4)


@dataclass
class FSTHStageConfig(StageSchedule):
    """The meta-learning stage (§3.2): E, G and D trained adversarially on K-shot episodes.

    Args:
        name: ``meta``.
        loss_weights: the terms of FSTH Eq. 3-4 (None = the paper's).
        d_lr_ratio: D's learning rate relative to ``lr`` (paper: 2e-4 / 5e-5 = 4).
        d_steps: discriminator updates per generator update (paper: 2, after SAGAN); each
            reuses the step's real and generated frames.
    """

    name: StageName = "meta"
    k: int = 8
    batch_size: int = 48
    lr: float = 5e-5
    betas: tuple[float, float] = FSTH_BETAS
    warmup_steps: int = 0
    decay_factor: float = 1.0
    max_grad_norm: float = 0.0
    loss_weights: Optional[FSTHLossWeights] = None
    d_lr_ratio: float = D_LR_RATIO
    d_steps: int = 2

    def __post_init__(self):
        super().__post_init__()
        if self.modules is None:
            self.modules = list(MODULE_NAMES)
        check_module_names(self.modules, MODULE_NAMES, f"stage {self.name}")
        self.loss_weights = (self.loss_weights or FSTHLossWeights()).resolved(META_WEIGHTS)
        if self.d_lr_ratio <= 0 or self.d_steps < 1:
            raise ValueError(f"stage {self.name}: d_lr_ratio must be > 0 and d_steps >= 1")


@register_config("fsth")
@dataclass
class FSTHTrainConfig:
    """A complete FSTH run: data, model, the meta-learning stage, and the trainer.

    Args:
        method: the method this config trains (checked against checkpoints).
        data: the prepared dataset (each training clip is one video i of W).
        model: the architecture.
        stages: stages run in order (FSTH has one: ``meta``).
        trainer: how the trainer runs.
    """

    method: Literal["fsth"] = "fsth"
    data: DataConfig = field(default_factory=DataConfig)
    model: FSTHModelConfig = field(default_factory=FSTHModelConfig)
    stages: list[FSTHStageConfig] = field(default_factory=lambda: [FSTHStageConfig(name="meta", epochs=75)])
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self):
        check_stage_names(self.stages)


@register_config("fsth_finetune")
@dataclass
class FSTHFinetuneConfig(FinetuneConfigBase):
    """Few-shot fine-tuning (§3.3): psi' = P e_NEW and w' = w0 + e_NEW become free parameters.

    G (psi and psi') and D (theta, w', b) are trained on the T subject frames with FSTH Eq. 9-10.
    The options every method shares are :class:`FinetuneConfigBase`'s; ``steps`` counts G's
    steps (D takes ``d_steps`` per step) and ``lr`` is G's and psi''s (paper: as in
    meta-learning, 5e-5).

    Args:
        d_lr_ratio: D's (and w''s) learning rate relative to ``lr``.
        d_steps: discriminator updates per generator update.
        loss_weights: None = FSTH Eq. 9 (the meta weights without L_MCH).
    """

    steps: int = 40
    batch_size: int = 8
    lr: float = 5e-5
    betas: tuple[float, float] = FSTH_BETAS
    max_grad_norm: float = 0.0
    d_lr_ratio: float = D_LR_RATIO
    d_steps: int = 2
    loss_weights: Optional[FSTHLossWeights] = None

    def __post_init__(self):
        super().__post_init__()
        self.loss_weights = (self.loss_weights or FSTHLossWeights()).resolved(FINETUNE_WEIGHTS)
        if self.d_steps < 1:
            raise ValueError("d_steps must be >= 1")
        if self.d_lr_ratio <= 0:
            raise ValueError("d_lr_ratio must be > 0")
