"""Frozen AlexNet feature extractor, the backbone of the LPIPS metric (Zhang et al. 2018).

The convolutional part of AlexNet (Krizhevsky 2014, "one weird trick" variant) in torchvision's
layout, so that torchvision's ImageNet file ``alexnet-owt-7be5be79.pth`` loads strictly:
``features`` is a Sequential of 13 layers whose convolutions sit at indices 0, 3, 6, 8 and 10
(``features.0.weight`` .. ``features.10.bias``). LPIPS reads the five ReLU outputs
``relu1`` .. ``relu5`` (``features.1``, ``.4``, ``.7``, ``.9``, ``.11``); the last max pool and
the classifier are never used.

The network is frozen: no parameter requires gradients and it stays in eval mode.
"""

from __future__ import annotations

import torch
from torch import nn

from talkinghead.models.frozen import FrozenModule
from talkinghead.weights import (
    load_state_dict,
    load_strict,
    require,
)

# (output channels, kernel size, stride, padding) of the five convolutions, torchvision's values.
ALEXNET_CONVS = ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))
# The convolutions followed by a 3x3 stride-2 max pool (before the next convolution).
_POOLED_AFTER = (0, 1, 4)
ALEXNET_LAYERS = ("relu1", "relu2", "relu3", "relu4", "relu5")
ALEXNET_CHANNELS = tuple(conv[0] for conv in ALEXNET_CONVS)  # (64, 192, 384, 256, 256)


class AlexNetFeatures(FrozenModule):
    """AlexNet's convolutional part returning the five ReLU outputs LPIPS compares.

    ``features`` holds, in torchvision's order, conv1 (11x11 / 4), ReLU, max pool, conv2 (5x5),
    ReLU, max pool, conv3, ReLU, conv4, ReLU, conv5 (3x3), ReLU, max pool. The parameters are
    the file's ``features.*`` tensors; the classifier is not built.

    Input: (b, 3, h, w) in whatever normalisation the caller's metric defines (LPIPS feeds
    [-1, 1] RGB through its own scaling layer); h, w >= 63 so that conv5 has a pixel left.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        self.relu_indices: list[int] = []
        for index, (width, kernel, stride, padding) in enumerate(ALEXNET_CONVS):
            layers += [nn.Conv2d(in_channels, width, kernel, stride=stride, padding=padding), nn.ReLU()]
            self.relu_indices.append(len(layers) - 1)
            if index in _POOLED_AFTER:
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.freeze()

    @classmethod
    def from_registry(cls, purpose: str | None = None) -> AlexNetFeatures:
        """The network with the installed ``alexnet`` weights (``alexnet-owt-7be5be79.pth``).

        The file's ``classifier.*`` tensors (the three fully connected layers) are ignored on
        purpose: LPIPS uses convolutional activations only. Every ``features.*`` tensor must be
        there with its shape.

        Raises:
            MissingWeightsError: the file is not installed (the message says how to install it).
            CorruptWeightsError: the file cannot be read safely or its feature keys do not match.
        """
        path = require("alexnet", purpose)
        state = {key: value for key, value in load_state_dict(path).items() if not key.startswith("classifier.")}
        with torch.device("meta"):  # every weight comes from the file: skip the random init
            network = cls()
        network.to_empty(device="cpu")
        load_strict(network, state, path, "alexnet")  # CorruptWeightsError names the bad keys
        return network

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five ReLU outputs.

        Args:
            x: (b, 3, h, w) input.

        Returns:
            ``[relu1 (b, 64, h1, w1), relu2 (b, 192, ..), relu3 (b, 384, ..), relu4 (b, 256, ..),
            relu5 (b, 256, ..)]`` with h1 = (h - 7) // 4 + 1 and each pool roughly halving.
        """
        dtype = self.features[0].weight.dtype
        x = x if x.dtype == dtype else x.to(dtype)
        outputs: list[torch.Tensor] = []
        for index in range(self.relu_indices[-1] + 1):  # the final max pool is not needed
            x = self.features[index](x)
            if index in self.relu_indices:
                outputs.append(x)
        return outputs
