"""FSTH's objectives: FSTH Eq. 3-4 for E and G, FSTH Eq. 6 for D (and FSTH Eq. 9-10 in fine-tuning).

    L_G = L_CNT + L_ADV + L_MCH,   L_ADV = -D(x_hat, y, i) + 10 L_FM,   L_MCH = 10 |E(x(s_k), y(s_k)) - W_i|_1
    L_D = max(0, 1 + D(x_hat, y, i)) + max(0, 1 - D(x, y, i))  (+ L_MCH on W, see below)

L_CNT = 1.5e-1 VGG19 + 2.5e-2 VGGFace, each the sum of L1 distances at relu1_1 ... relu5_1
(Conv1,6,11,20,29 of VGG19 and Conv1,6,11,18,25 of VGGFace). Offline (``perceptual: auto``
without the files) a missing VGG19 is replaced by an image-pyramid L1 (``content_fallback``)
and a missing VGGFace term is dropped; the run's log says which.

L_MCH(phi, W) ties the two kinds of video embedding together. The trainer updates E in the
generator phase and W in the discriminator phase, so the term is applied in both: E is
pulled towards W_i (W constant there) and W_i towards the embeddings (E constant there);
this is what makes w0 + e_NEW a sensible start for fine-tuning (§3.3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from talkinghead.config.fsth import FSTHLossWeights
from talkinghead.losses.factory import PerceptualNetworks, build_perceptual_networks
from talkinghead.losses.hinge import block_feature_matching, d_hinge_loss, g_hinge_loss
from talkinghead.losses.perceptual import PerceptualLoss
from talkinghead.losses.pyramid import pyramid_l1

NUM_CONTENT_LAYERS = 5  # relu1_1 ... relu5_1, summed with equal weights (§3.4)

Terms = dict[str, torch.Tensor]


def needed_networks(weights: FSTHLossWeights) -> set[str]:
    """Perceptual networks the non-zero content terms use."""
    return {name for name in ("vgg19", "vggface") if getattr(weights, name) > 0}


def content_networks(needed: set[str], mode: str, *, option: str = "trainer.perceptual") -> PerceptualNetworks:
    """VGG19 / VGGFace for L_CNT per ``mode``; the message says what stands in for a missing one."""
    perceptual = build_perceptual_networks(needed, mode, option=option)
    notes = []
    if "vgg19" in needed and not perceptual.has("vgg19"):
        notes.append("L_CNT's VGG19 term is replaced by an image-pyramid L1 (loss_weights.content_fallback)")
    if "vggface" in needed and not perceptual.has("vggface"):
        notes.append("L_CNT's VGGFace term is off")
    if notes:
        perceptual.message = (perceptual.message + " FSTH: " + "; ".join(notes) + ".").strip()
    return perceptual


def embedding_match(per_frame: torch.Tensor, video_embedding: torch.Tensor) -> torch.Tensor:
    """L_MCH: mean L1 between (b, k, N) per-frame embeddings and the (b, N) columns W_i; scalar fp32."""
    return F.l1_loss(per_frame.float(), video_embedding.float()[:, None].expand_as(per_frame))


class FSTHObjective:
    """The terms of FSTH Eq. 3-6 with their weights and the perceptual networks that are installed.

    Args:
        weights: the stage's (or fine-tuning's) loss weights.
        perceptual: the loaded perceptual networks.
    """

    def __init__(self, weights: FSTHLossWeights, perceptual: PerceptualNetworks):
        self.weights = weights
        ones = [1.0] * NUM_CONTENT_LAYERS
        self.vgg19 = PerceptualLoss(perceptual.vgg19, layer_weights=ones) if perceptual.has("vgg19") else None
        self.vggface = PerceptualLoss(perceptual.vggface, layer_weights=ones) if perceptual.has("vggface") else None

    def to(self, device: torch.device) -> FSTHObjective:
        for loss in (self.vgg19, self.vggface):
            if loss is not None:
                loss.to(device)
        return self

    def content(self, output: torch.Tensor, target: torch.Tensor) -> Terms:
        """The unweighted L_CNT terms that are on (VGG19 or its pyramid-L1 stand-in, VGGFace)."""
        w = self.weights
        terms: Terms = {}
        output, target = output.float(), target.float()
        if w.vgg19 > 0 and self.vgg19 is not None:
            terms["vgg19"] = self.vgg19(output, target)
        elif w.content_fallback > 0:
            terms["content_fallback"] = pyramid_l1(output, target)
        if w.vggface > 0 and self.vggface is not None:
            terms["vggface"] = self.vggface(output, target)
        return terms

    def generator(self, output: torch.Tensor, target: torch.Tensor, fake_score: torch.Tensor | None,
                  fake_features: list[torch.Tensor] | None, real_features: list[torch.Tensor] | None,
                  per_frame: torch.Tensor | None, video_embedding: torch.Tensor | None) -> tuple[torch.Tensor, Terms]:
        """FSTH Eq. 3: the weighted loss of E and G and its unweighted terms.

        Args:
            output, target: (b, 3, s, s) x_hat and x.
            fake_score: (b,) D(x_hat, y, i), or None (no adversarial terms).
            fake_features, real_features: D's activations after every residual block.
            per_frame: (b, k, N) E(x(s_k), y(s_k)), or None (fine-tuning: no L_MCH).
            video_embedding: (b, N) W_i.
        """
        w = self.weights
        terms = self.content(output, target)
        if fake_score is not None:
            if w.gan > 0:
                terms["gan"] = g_hinge_loss(fake_score)
            if w.feature_matching > 0 and fake_features is not None and real_features is not None:
                terms["feature_matching"] = block_feature_matching(real_features, fake_features)
        if w.match > 0 and per_frame is not None and video_embedding is not None:
            terms["match"] = embedding_match(per_frame, video_embedding)
        if not terms:
            raise ValueError("every loss term of FSTH's generator has weight 0; nothing would train")
        total = torch.stack([getattr(w, name) * value for name, value in terms.items()]).sum()
        return total, terms

    def discriminator(self, real_score: torch.Tensor, fake_score: torch.Tensor, per_frame: torch.Tensor | None,
                      video_embedding: torch.Tensor | None) -> tuple[torch.Tensor, Terms]:
        """FSTH Eq. 6 (plus L_MCH's pull of W_i towards the constant embeddings, when on)."""
        hinge = d_hinge_loss(real_score, fake_score)
        terms: Terms = {"d_hinge": hinge, "real_score": real_score.detach().float().mean(),
                        "fake_score": fake_score.detach().float().mean()}
        total = hinge
        if self.weights.match > 0 and per_frame is not None and video_embedding is not None:
            terms["d_match"] = embedding_match(per_frame.detach(), video_embedding)
            total = total + self.weights.match * terms["d_match"]
        return total, terms
