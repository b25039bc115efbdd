"""Perceptual reconstruction loss (Johnson et al. 2016) on frozen VGG19 / VGGFace features.

LSR §3.3 (L_rec) and FSTH's L_CNT compare the output and the ground truth in the feature
spaces of VGG19 (general content) and VGGFace (identity); LSR's pre-training also applies it
to G_l's extra RGB output R_t (lambda_R, LSR Eq. 2).

Default layers and weights:

* VGG19: ``relu1_1 .. relu5_1`` weighted ``1/32, 1/16, 1/8, 1/4, 1``, the VGG loss of
  pix2pixHD and SPADE, whose generator LSR's G_s is; LSR's vgg19 weight (0.1) applies on top.
* VGGFace: ``relu1_1 .. relu5_1`` (the first rectified conv of each block) weighted equally,
  as FSTH's VGGFace content term.

Precision: images are cast to the frozen network's dtype (fp32); inside an autocast region
the convolutions run in the autocast dtype (bf16 on GPU), which is accurate enough for a loss
and much faster. The L1 distances are then taken in fp32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.models.vgg import VGG19Features, VGGFace

VGG19_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
VGG19_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
VGGFACE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
VGGFACE_LAYER_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0)


def check_image_pair(output: torch.Tensor, target: torch.Tensor, who: str) -> None:
    """Raise a ValueError unless both are (b, 3, h, w) batches of the same shape."""
    if output.shape != target.shape or output.ndim != 4 or output.shape[1] != 3:
        raise ValueError(
            f"{who} expects two (b, 3, h, w) batches of the same shape, "
            f"got {tuple(output.shape)} and {tuple(target.shape)}"
        )


class PerceptualLoss(nn.Module):
    """Weighted sum over layers of the mean absolute difference of frozen-network activations.

    ``L = sum_l w_l * mean |phi_l(output) - phi_l(target)|``

    The target's activations are computed without a graph (the target is a constant); the
    gradient reaches ``output`` and never the network's weights.

    Args:
        network: a frozen :class:`VGG19Features` or :class:`VGGFace` (conv part is enough).
        layers: layer names of the network; None = the network's defaults (see module doc).
        layer_weights: one weight per layer; None = the defaults with default layers, else 1
            for every layer.
    """

    def __init__(
        self,
        network: VGG19Features | VGGFace,
        layers: Sequence[str] | None = None,
        layer_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(network, VGG19Features):
            default_layers, default_weights = VGG19_LAYERS, VGG19_LAYER_WEIGHTS
        elif isinstance(network, VGGFace):
            default_layers, default_weights = VGGFACE_LAYERS, VGGFACE_LAYER_WEIGHTS
        else:
            raise TypeError(f"PerceptualLoss needs a VGG19Features or VGGFace network, got {type(network).__name__}")
        if layers is None:
            layers = default_layers
            layer_weights = default_weights if layer_weights is None else layer_weights
        layers = tuple(layers)
        layer_weights = tuple(float(w) for w in (layer_weights if layer_weights is not None else [1.0] * len(layers)))
        if len(layer_weights) != len(layers):
            raise ValueError(f"PerceptualLoss: {len(layers)} layers but {len(layer_weights)} layer weights")
        unknown = [name for name in layers if name not in network.layer_order]
        if unknown:
            raise ValueError(f"{type(network).__name__} has no layer(s) {unknown}; known: {network.layer_order}")
        self.network = network
        self.layers = layers
        self.layer_weights = layer_weights

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Perceptual distance of two image batches.

        Args:
            output: (b, 3, h, w) generated RGB in [-1, 1].
            target: (b, 3, h, w) ground-truth RGB in [-1, 1].

        Returns:
            Scalar fp32 loss.
        """
        check_image_pair(output, target, "PerceptualLoss")
        output_features = self.network(self.network.preprocess(output), self.layers)
        with torch.no_grad():
            target_features = self.network(self.network.preprocess(target), self.layers)
        loss = output.new_zeros((), dtype=torch.float32)
        for name, weight in zip(self.layers, self.layer_weights):
            loss = loss + weight * F.l1_loss(output_features[name].float(), target_features[name].float())
        return loss

    def extra_repr(self) -> str:
        return f"layers={self.layers}, layer_weights={self.layer_weights}"
