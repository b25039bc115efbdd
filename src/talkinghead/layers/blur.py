"""FIR low-pass filtering and anti-aliased downsampling (Zhang 2019; StyleGAN2's ``upfirdn2d``).

LSR (appendix A.1) replaces every average pooling of its encoders and U-Net with blur
pooling: a [1, 3, 3, 1] x [1, 3, 3, 1] low-pass filter, then keeping every second pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

PaddingMode = Literal["zeros", "reflect", "replicate"]
_PADDING_MODES = ("zeros", "reflect", "replicate")


def make_blur_kernel(taps: Sequence[float] = (1, 3, 3, 1)) -> torch.Tensor:
    """Separable 2-D FIR kernel: the outer product of ``taps`` with itself, summing to 1.

    Returns:
        (k, k) float32 tensor.
    """
    kernel_1d = torch.tensor(taps, dtype=torch.float32)
    kernel = torch.outer(kernel_1d, kernel_1d)
    return kernel / kernel.sum()


class Blur(nn.Module):
    """Depthwise FIR low-pass filter, optionally followed by subsampling (``stride``).

    With the default 4-tap kernel, stride 1 and ``padding=None``, the output has the
    input's size (padding (2, 1): an even kernel has no centre, so the result is shifted by
    half a pixel). Borders are zero padded by default, as in StyleGAN2; ``reflect`` or
    ``replicate`` keep a constant image exactly constant up to its borders.

    Args:
        padding: (before, after) padding of both spatial axes, or one int for both sides;
            None = the padding that keeps the size at stride 1.
        stride: keep every ``stride``-th output pixel.
        taps: 1-D filter taps (normalised, so only their ratios matter).
        padding_mode: ``zeros``, ``reflect`` or ``replicate``.
    """

    def __init__(
        self,
        padding: int | tuple[int, int] | None = None,
        stride: int = 1,
        taps: Sequence[float] = (1, 3, 3, 1),
        padding_mode: PaddingMode = "zeros",
    ) -> None:
        super().__init__()
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"Blur: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        size = len(taps)
        if padding is None:
            padding = (size // 2, (size - 1) // 2)
        elif isinstance(padding, int):
            padding = (padding, padding)
        self.padding = tuple(padding)
        self.stride = stride
        self.padding_mode = padding_mode
        # (1, 1, k, k); a constant, so it is kept out of the state dict.
        self.register_buffer("kernel", make_blur_kernel(taps)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c, h, w) -> (b, c, (h + before + after - k) // stride + 1, same for w)."""
        channels = x.shape[1]
        before, after = self.padding
        if self.padding_mode == "zeros" and before == after:
            # Symmetric zero padding is free inside the convolution.
            pad_in_conv = before
        else:
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            x = F.pad(x, (before, after, before, after), mode=mode)
            pad_in_conv = 0
        weight = self.kernel.to(dtype=x.dtype).expand(channels, 1, -1, -1).contiguous()  # (c, 1, k, k)
        return F.conv2d(x, weight, stride=self.stride, padding=pad_in_conv, groups=channels)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, stride={self.stride}, padding_mode={self.padding_mode!r}"


class BlurPool2d(Blur):
    """Anti-aliased downsampling by 2: blur, then keep every second pixel.

    Used instead of average pooling everywhere. With the 4-tap kernel the padding is (1, 1),
    which centres every output pixel on the 2x2 cell it replaces, like ``avg_pool2d(x, 2)``;
    an (h, w) input gives (h // 2, w // 2).

    Args:
        taps: 1-D filter taps.
        padding_mode: ``zeros``, ``reflect`` or ``replicate``.
    """

    def __init__(self, taps: Sequence[float] = (1, 3, 3, 1), padding_mode: PaddingMode = "zeros") -> None:
        total = len(taps) - 2  # (h + total - k) // 2 + 1 == h // 2
        super().__init__(padding=((total + 1) // 2, total // 2), stride=2, taps=taps, padding_mode=padding_mode)
