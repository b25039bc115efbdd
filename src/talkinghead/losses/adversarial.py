"""Adversarial losses of StyleGAN2 (Karras et al. 2020), used by LSR Eq. 4.

Small pure functions on discriminator logits: the non-saturating logistic GAN loss and the
R1 gradient penalty (Mescheder et al. 2018) that LSR takes from StyleGAN2 [39]. Lazy
regularisation (R1 every N steps, scaled by N) is the trainer's business, not theirs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import autograd


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator logistic loss: ``E[softplus(-D(x))] + E[softplus(D(G(z)))]``.

    Args:
        real_logits: D's scores of real images, any shape (usually (b,) or (b, 1)).
        fake_logits: D's scores of generated images, any shape.

    Returns:
        Scalar fp32 loss (``-log sigmoid(real) - log(1 - sigmoid(fake))``, averaged).
    """
    return F.softplus(-real_logits.float()).mean() + F.softplus(fake_logits.float()).mean()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator non-saturating loss: ``E[softplus(-D(G(z)))]`` (= ``-log sigmoid``), scalar fp32."""
    return F.softplus(-fake_logits.float()).mean()


def d_r1_loss(real_logits: torch.Tensor, real_inputs: torch.Tensor) -> torch.Tensor:
    """R1 penalty: squared norm of D's gradient at the real samples, averaged over the batch.

    ``mean_i ||grad_x D(x_i)||^2``; the caller multiplies by ``gamma / 2`` (and by the lazy
    interval). The graph of the gradient is kept so that the penalty can be back-propagated.

    Args:
        real_logits: D's scores of ``real_inputs``, (b,) or (b, 1); computed with
            ``real_inputs.requires_grad_(True)``.
        real_inputs: the tensor D saw (b, ...), or the tensor it was computed from.

    Returns:
        Scalar fp32 penalty.
    """
    (grad,) = autograd.grad(outputs=real_logits.sum(), inputs=real_inputs, create_graph=True)
    return grad.float().pow(2).reshape(grad.shape[0], -1).sum(dim=1).mean()
