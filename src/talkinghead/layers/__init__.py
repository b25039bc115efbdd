"""Building blocks of the networks: equalised layers, blur pooling, conditional norms, residual blocks."""

from talkinghead.layers.activation import ScaledLeakyReLU
from talkinghead.layers.adain import AdaIN
from talkinghead.layers.blur import Blur, BlurPool2d, make_blur_kernel
from talkinghead.layers.conditional_norm import NORMS, InstanceNorm, NoNorm, build_norm
from talkinghead.layers.equalized import EqualConv2d, EqualLinear
from talkinghead.layers.minibatch_std import MinibatchStdDev, minibatch_group_size
from talkinghead.layers.resblocks import DownResBlock, SPADEResBlock, UpResBlock, upsample2x
from talkinghead.layers.spade import SPADE, resize_condition

__all__ = [
    "NORMS",
    "SPADE",
    "AdaIN",
    "Blur",
    "BlurPool2d",
    "DownResBlock",
    "EqualConv2d",
    "EqualLinear",
    "InstanceNorm",
    "MinibatchStdDev",
    "NoNorm",
    "SPADEResBlock",
    "ScaledLeakyReLU",
    "UpResBlock",
    "build_norm",
    "make_blur_kernel",
    "minibatch_group_size",
    "resize_condition",
    "upsample2x",
]
