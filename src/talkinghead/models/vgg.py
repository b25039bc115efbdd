"""Frozen VGG networks behind the perceptual and identity losses (LSR §3.3, FSTH L_CNT).

Two pretrained networks, each laid out so that its public weight file loads strictly:

* :class:`VGG19Features`: the convolutional part of VGG19 (Simonyan & Zisserman 2015) in
  torchvision's layout (``features.N.weight``, ``vgg19-dcbb9e9d.pth``). It takes ImageNet-
  normalised RGB (``(x - mean) / std`` with ``x`` in [0, 1]).
* :class:`VGGFace`: VGG-Face (Parkhi et al. 2015), a VGG-16, in the layout of Albanie's
  pytorch-mcn conversion of the MatConvNet DAG model (``conv1_1`` .. ``conv5_3``, ``fc6``,
  ``fc7``, ``fc8``; ``vgg_face_dag.pth``). The conversion's ``meta`` says it takes RGB in
  0..255 minus the mean ``[129.186, 104.762, 93.594]`` (std 1) at 224 x 224.

Both networks are frozen: their parameters never require gradients and they stay in eval
mode whatever ``train()`` is asked (they hold no dropout or batch norm that forward uses,
but a frozen network must not change behaviour with its owner's mode). Gradients still flow
through them to their inputs, which is what a perceptual loss needs.

Each has a ``preprocess`` method that maps the generators' images (RGB in [-1, 1]) to its
own input convention, and ``forward(x, layers)`` that returns the named activations and stops
after the deepest one requested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.models.frozen import FrozenModule
from talkinghead.weights import (
    CorruptWeightsError,
    WeightsError,
    load_state_dict,
    load_strict,
    require,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# pytorch-mcn's vgg_face_dag.py: meta = {'mean': [129.186279296875, 104.76238250732422,
# 93.59396362304688], 'std': [1, 1, 1], 'imageSize': [224, 224, 3]}, RGB order, 0..255.
VGGFACE_MEAN = (129.186279296875, 104.76238250732422, 93.59396362304688)
VGGFACE_INPUT_SIZE = 224
VGGFACE_NUM_CLASSES = 2622
VGGFACE_DESCRIPTOR_DIM = 4096

# Output channels of the 3x3 convolutions of each block.
VGG19_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def layer_names(blocks: Sequence[Sequence[int]]) -> list[str]:
    """Names of the layers of a VGG, in order: ``conv1_1, relu1_1, ..., pool1, conv2_1, ...``."""
    names = []
    for block, widths in enumerate(blocks, start=1):
        for index in range(1, len(widths) + 1):
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
        names.append(f"pool{block}")
    return names


class _FrozenVGG(FrozenModule):
    """Shared behaviour of the frozen VGGs: no gradients to weights, always eval, named layers."""

    layer_order: list[str]

    def _set_constants(self) -> None:
        """(Re)create the non-persistent input-normalisation buffers."""
        raise NotImplementedError

    def _check_layers(self, layers: Iterable[str]) -> list[str]:
        layers = list(layers)
        if not layers:
            raise ValueError(f"{type(self).__name__}: ask for at least one layer")
        unknown = [name for name in layers if name not in self.layer_order]
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no layer(s) {unknown}; known: {', '.join(self.layer_order)}"
            )
        return layers

    def _input_dtype(self, x: torch.Tensor) -> torch.Tensor:
        # The weights stay fp32; inputs are cast to them. Under autocast the convolutions then
        # run in the autocast dtype (bf16), which is fine for a loss network.
        dtype = next(self.parameters()).dtype
        return x if x.dtype == dtype else x.to(dtype)


def _load_filtered(
    module: _FrozenVGG, name: str, purpose: str | None, ignore: Callable[[str], bool]
) -> None:
    """Load registry asset ``name`` into ``module`` strictly, leaving out the keys ``ignore`` says.

    Any key left after filtering must match ``module`` exactly (names and shapes); a file that
    does not is reported as corrupt, naming the file and the offending keys.
    """
    path = require(name, purpose)
    state = {key: value for key, value in load_state_dict(path).items() if not ignore(key)}
    # ``module`` may have been built on the meta device (no random initialisation of weights
    # that are about to be overwritten); give it real, uninitialised storage first.
    if any(p.is_meta for p in module.parameters()):
        module.to_empty(device="cpu")
        module._set_constants()
    try:
        load_strict(module, state, path, name)
    except CorruptWeightsError:
        raise
    except WeightsError as err:  # wrong/missing/unexpected keys: the file is not what its name says
        raise CorruptWeightsError(str(err)) from err


class VGG19Features(_FrozenVGG):
    """Convolutional part of VGG19 with torchvision's ``features.N`` indexing.

    ``features`` is a Sequential of 37 layers (16 convs, each followed by a ReLU, and 5 max
    pools), so ``features.0`` is ``conv1_1``, ``features.1`` ``relu1_1``, ``features.29``
    ``relu5_1``. Only the convolutions hold weights; the classifier of the official file is
    not built (the perceptual loss uses conv activations only).

    Input: ImageNet-normalised RGB, (b, 3, h, w); see :meth:`preprocess`.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for widths in VGG19_BLOCKS:
            for width in widths:
                layers += [nn.Conv2d(in_channels, width, kernel_size=3, padding=1), nn.ReLU()]
                in_channels = width
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        self.layer_order = layer_names(VGG19_BLOCKS)
        self._set_constants()
        self.freeze()

    def _set_constants(self) -> None:
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_registry(cls, purpose: str | None = None) -> VGG19Features:
        """The network with the installed ``vgg19`` weights (``vgg19-dcbb9e9d.pth``).

        The file's ``classifier.*`` tensors are ignored; every ``features.*`` tensor must be
        there with its shape.

        Raises:
            MissingWeightsError: the file is not installed (the message says how to install it).
            CorruptWeightsError: the file cannot be read safely or its feature keys do not match.
        """
        with torch.device("meta"):  # every weight comes from the file: skip the random init
            network = cls()
        _load_filtered(network, "vgg19", purpose, ignore=lambda key: key.startswith("classifier."))
        return network

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """RGB in [-1, 1] (b, 3, h, w) -> ImageNet-normalised input (b, 3, h, w)."""
        x = self._input_dtype(images)
        return ((x + 1.0) * 0.5 - self.mean) / self.std

    def forward(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Activations at the named layers (e.g. ``relu1_1``, ``relu3_1``, ``relu5_1``).

        Args:
            x: (b, 3, h, w) ImageNet-normalised RGB (see :meth:`preprocess`).
            layers: layer names from ``layer_order``.

        Returns:
            ``{name: (b, c, h / 2**k, w / 2**k)}``; layers after the deepest requested one are
            not computed.
        """
        wanted = set(self._check_layers(layers))
        last = max(self.layer_order.index(name) for name in wanted)
        x = self._input_dtype(x)
        outputs: dict[str, torch.Tensor] = {}
        for index in range(last + 1):
            x = self.features[index](x)
            name = self.layer_order[index]
            if name in wanted:
                outputs[name] = x
        return outputs


class VGGFace(_FrozenVGG):
    """VGG-Face (VGG-16) with the key names of the pytorch-mcn ``vgg_face_dag.pth``.

    Args:
        with_fc: also build ``fc6`` (25088 -> 4096), ``fc7`` (4096 -> 4096) and ``fc8``
            (4096 -> 2622), needed by :meth:`descriptor`. They hold 117 M of the 134 M
            parameters (fc6 alone 102 M), so the perceptual loss, which uses conv activations
            only, builds the network without them.

    Input: RGB in 0..255 minus :data:`VGGFACE_MEAN`, (b, 3, h, w); see :meth:`preprocess`.
    """

    def __init__(self, with_fc: bool = False) -> None:
        super().__init__()
        self.with_fc = with_fc
        in_channels = 3
        for block, widths in enumerate(VGG16_BLOCKS, start=1):
            for index, width in enumerate(widths, start=1):
                self.add_module(f"conv{block}_{index}", nn.Conv2d(in_channels, width, kernel_size=3, padding=1))
                in_channels = width
        if with_fc:
            side = VGGFACE_INPUT_SIZE // 32  # 7 after five 2x2 pools
            self.fc6 = nn.Linear(512 * side * side, VGGFACE_DESCRIPTOR_DIM)
            self.fc7 = nn.Linear(VGGFACE_DESCRIPTOR_DIM, VGGFACE_DESCRIPTOR_DIM)
            self.fc8 = nn.Linear(VGGFACE_DESCRIPTOR_DIM, VGGFACE_NUM_CLASSES)
        self.layer_order = layer_names(VGG16_BLOCKS)
        self._set_constants()
        self.freeze()

    def _set_constants(self) -> None:
        self.register_buffer("mean", torch.tensor(VGGFACE_MEAN).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_registry(cls, purpose: str | None = None, *, with_fc: bool = False) -> VGGFace:
        """The network with the installed ``vggface`` weights (``vgg_face_dag.pth``).

        Args:
            purpose: what needs the weights (shown when they are missing).
            with_fc: load the fully connected layers too (for :meth:`descriptor`); without
                them the file's ``fc6``/``fc7``/``fc8`` tensors are ignored.

        Raises:
            MissingWeightsError: the file is not installed (the message says how to install it).
            CorruptWeightsError: the file cannot be read safely or its keys do not match.
        """
        with torch.device("meta"):  # every weight comes from the file: skip the random init
            network = cls(with_fc=with_fc)
        fc_prefixes = ("fc6.", "fc7.", "fc8.")
        _load_filtered(
            network, "vggface", purpose, ignore=lambda key: not with_fc and key.startswith(fc_prefixes)
        )
        return network

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """RGB in [-1, 1] (b, 3, h, w) -> the conversion's input: RGB 0..255 minus its mean."""
        x = self._input_dtype(images)
        return (x + 1.0) * 127.5 - self.mean

    def forward(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Activations at the named conv-part layers (e.g. ``relu1_1`` .. ``relu5_1``).

        Args:
            x: (b, 3, h, w) mean-subtracted RGB in 0..255 (see :meth:`preprocess`).
            layers: layer names from ``layer_order``.

        Returns:
            ``{name: (b, c, h / 2**k, w / 2**k)}``; layers after the deepest requested one are
            not computed.
        """
        return self._convs(self._input_dtype(x), set(self._check_layers(layers)))

    def _convs(self, x: torch.Tensor, wanted: set[str]) -> dict[str, torch.Tensor]:
        last = max(self.layer_order.index(name) for name in wanted)
        outputs: dict[str, torch.Tensor] = {}
        for name in self.layer_order[: last + 1]:
            if name.startswith("conv"):
                x = self._modules[name](x)
            elif name.startswith("relu"):
                x = F.relu(x)
            else:
                x = F.max_pool2d(x, kernel_size=2, stride=2)
            if name in wanted:
                outputs[name] = x
        return outputs

    def _fc7(self, x: torch.Tensor) -> torch.Tensor:
        """Rectified fc7 activations (b, 4096) of a (b, 3, h, w) network input, resized to 224."""
        if not self.with_fc:
            raise RuntimeError(
                "VGGFace was built without its fully connected layers; load it with "
                "VGGFace.from_registry(..., with_fc=True) for identity descriptors or logits"
            )
        x = self._input_dtype(x)
        if x.shape[-2:] != (VGGFACE_INPUT_SIZE, VGGFACE_INPUT_SIZE):
            # Resizing commutes with the per-channel mean subtraction, so it can happen here.
            size = (VGGFACE_INPUT_SIZE, VGGFACE_INPUT_SIZE)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        features = self._convs(x, {"pool5"})["pool5"]  # (b, 512, 7, 7)
        hidden = F.relu(self.fc6(features.flatten(1)))  # (b, 4096); flattened in (c, h, w) order
        return F.relu(self.fc7(hidden))  # (b, 4096)

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        """The VGG-Face identity descriptor: L2-normalised fc7 activations (after its ReLU).

        Parkhi et al. use the 4096-d output of the penultimate layer (fc7, rectified) as the
        face descriptor, compared by cosine similarity. The input is resized to 224 x 224
        (bilinear, antialiased when shrinking) because fc6 expects a 7 x 7 x 512 map.

        Args:
            x: (b, 3, h, w) mean-subtracted RGB in 0..255 (see :meth:`preprocess`), a face crop.

        Returns:
            (b, 4096) fp32 unit vectors.
        """
        return F.normalize(self._fc7(x).float(), dim=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Scores of the 2622 VGG-Face training identities, (b, 2622); input as :meth:`descriptor`."""
        return self.fc8(self._fc7(x))
