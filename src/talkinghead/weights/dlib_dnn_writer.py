"""Write dlib's DNN file format (dlib's ``serialize``): the inverse of :mod:`talkinghead.weights.dlib_dnn`.

Used to build small networks in dlib's format for tests, and to write weights that dlib's own
C++ can load (``dlib.face_recognition_model_v1(path)``). See :mod:`talkinghead.weights.dlib_dnn`
for the layout.
"""

from __future__ import annotations

import io

import numpy as np

from talkinghead.weights.dlib_dnn import (
    ADD_LAYER_ON_INPUT_VERSION,
    ADD_LAYER_VERSION,
    LOSS_VERSION,
    TAG_OR_SKIP_VERSION,
    DlibLayer,
    DlibNetwork,
)


class _Writer:
    """dlib's primitive ``serialize`` functions into a byte buffer."""

    def __init__(self) -> None:
        self.out = io.BytesIO()

    def int(self, value: int) -> None:
        # dlib writes at least one magnitude byte (its reader refuses a count of 0).
        magnitude = abs(int(value))
        body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
        self.out.write(bytes([len(body) | (0x80 if value < 0 else 0)]) + body)

    def float(self, value: float) -> None:
        # An integer mantissa (53 bits of the double) and a base-2 exponent; whole zero bytes
        # at the mantissa's low end are dropped, as dlib's files show (1.0 is 16 * 2**-4).
        fraction, exponent = np.frexp(np.float64(value))
        mantissa, exponent = int(np.ldexp(fraction, 53)), int(exponent) - 53
        while mantissa and mantissa % 256 == 0:
            mantissa, exponent = mantissa // 256, exponent + 8
        self.int(mantissa)
        self.int(exponent if mantissa else 0)

    def bool(self, value: bool) -> None:
        self.out.write(b"1" if value else b"0")

    def string(self, text: str) -> None:
        self.int(len(text))
        self.out.write(text.encode("latin-1"))

    def tensor(self, array: np.ndarray) -> None:
        array = np.asarray(array, np.float32)
        shape = tuple(array.shape) + (1,) * (4 - array.ndim)
        self.int(2)
        for d in shape:
            self.int(d)
        self.out.write(array.astype("<f4").tobytes())

    def alias_tensor(self, shape: tuple[int, ...]) -> None:
        self.int(1)
        for d in tuple(shape) + (1,) * (4 - len(shape)):
            self.int(d)


def _write_details(w: _Writer, layer: DlibLayer) -> None:
    p = layer.params
    if layer.kind == "con":
        weight = np.asarray(p["weight"], np.float32)
        bias = p.get("bias")
        flat = np.concatenate([weight.reshape(-1)] + ([np.asarray(bias, np.float32)] if bias is not None else []))
        w.string("con_5")
        w.tensor(flat.reshape(-1, 1, 1, 1))
        for value in (*weight.shape[0:1], *weight.shape[2:4]):  # num_filters, nr, nc
            w.int(value)
        for key in ("stride_y", "stride_x", "padding_y", "padding_x"):
            w.int(p[key])
        w.alias_tensor(weight.shape)
        w.alias_tensor((1, weight.shape[0]))
        for value in (1.0, 1.0, 1.0, 0.0):
            w.float(value)
        w.bool(bias is not None)
    elif layer.kind == "fc":
        weight = np.asarray(p["weight"], np.float32)  # (num_inputs, num_outputs)
        bias = p.get("bias")
        w.string("fc_2")
        w.int(weight.shape[1])
        w.int(weight.shape[0])
        w.tensor(np.concatenate([weight.reshape(-1)] + ([np.asarray(bias, np.float32)] if bias is not None else []))
                 .reshape(-1, 1, 1, 1))
        w.alias_tensor((weight.shape[0], weight.shape[1]))
        w.alias_tensor((1, weight.shape[1]))
        w.int(0 if bias is not None else 1)
        for value in (1.0, 1.0, 1.0, 0.0):
            w.float(value)
    elif layer.kind == "affine":
        gamma, beta = np.asarray(p["gamma"], np.float32), np.asarray(p["beta"], np.float32)
        w.string("affine_")
        w.tensor(np.concatenate([gamma, beta]).reshape(-1, 1, 1, 1))
        w.alias_tensor((1, gamma.size))
        w.alias_tensor((1, beta.size))
        w.int(p.get("mode", 0))
    elif layer.kind in ("max_pool", "avg_pool"):
        w.string(f"{layer.kind}_2")
        for key in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
            w.int(p[key])
    elif layer.kind == "relu":
        w.string("relu_")
    elif layer.kind == "add_prev":
        w.string("add_prev_")
    else:
        raise ValueError(f"cannot write a dlib layer of kind {layer.kind!r}")


def write_dlib_network(network: DlibNetwork) -> bytes:
    """Serialise ``network`` as dlib does (the inverse of :func:`read_dlib_network`).

    Writes ``con_5``, ``fc_2``, ``affine_``, ``relu_``, ``max_pool_2``/``avg_pool_2``,
    ``add_prev_``, tags/skips, an ``input_rgb_image_sized`` input and an optional
    ``loss_metric_2`` loss. The network's first layer must not be a tag/skip.
    """
    if not network.layers or network.layers[0].kind == "tag_or_skip":
        raise ValueError("the layer above the input must be a computational layer")
    w = _Writer()
    if network.loss is not None:
        w.int(LOSS_VERSION)
        w.string("loss_metric_2")
        w.float(network.loss.params.get("margin", 0.04))
        w.float(network.loss.params.get("distance_threshold", 0.6))
    for layer in reversed(network.layers[1:]):
        w.int(TAG_OR_SKIP_VERSION if layer.kind == "tag_or_skip" else ADD_LAYER_VERSION)
    w.int(ADD_LAYER_ON_INPUT_VERSION)
    w.string("input_rgb_image_sized")
    for mean in network.input.params["mean_rgb"]:
        w.float(mean)
    w.int(network.input.params["nr"])
    w.int(network.input.params["nc"])
    for index, layer in enumerate(network.layers):
        if layer.kind == "tag_or_skip":
            continue
        _write_details(w, layer)
        for flag in (True, True, False):
            w.bool(flag)
        for _ in range(3):
            w.tensor(np.zeros((0, 0, 0, 0), np.float32))
        if index == 0:
            w.int(1)  # the sample expansion factor of the layer on the input
    return w.out.getvalue()
