"""ID-SIM: cosine similarity of face-recognition embeddings of the output and the ground truth.

The papers measure identity preservation with different networks: LSR with VGG-Face, FSTH and
LPD (who call it CSIM) with ArcFace. Both are available through the weights registry
(``network="vggface"`` / ``"arcface"``). The default, which needs no download, is dlib's 128-d
ResNet face descriptor from ``face_recognition_models``, run by its PyTorch port in batches
(``dlib-resnet``); ``network="dlib"`` runs the same network through dlib's C++. Cosines from different networks are
on different scales, so every report prints :attr:`IDSim.description`, which names the network.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The module, not its names: face_embedding imports metrics.base, whose package imports this
# file, so whichever of the two is imported first, the other may still be half-initialised here.
from talkinghead.evaluation import face_embedding
from talkinghead.evaluation.metrics.base import (
    MetricUnavailable,
    check_image_batch,
    check_pairs,
    register_metric,
)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (n, d) embedding arrays -> (n,) float64, NaN where a row is NaN or zero."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim == 1:
        a = a[None]
    if b.ndim == 1:
        b = b[None]
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"embeddings {a.shape} and {b.shape}: expected two (n, d) arrays of the same shape")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=1) / np.where(norms > 0, norms, np.nan)


@register_metric(
    "id_sim",
    "frame",
    higher_is_better=True,
    description="ID-SIM: cosine similarity of face-recognition embeddings of output and ground truth "
    "(network named in each report; default dlib ResNet 128-d, PyTorch port)",
    requires=("dlib", "face_recognition_models"),
)
class IDSim:
    """ID-SIM metric: ``metric(outputs, targets) -> (n,)`` cosines, NaN where either frame has no face.

    Args:
        network: ``dlib-resnet`` (offline default, when None), ``dlib`` (the same network in dlib's C++),
            ``vggface`` (LSR) or ``arcface`` (FSTH, LPD).
        embedder: an already built embedder to use instead (its ``name`` must equal ``network``).
        embedder_options: keyword arguments of the embedder built by the metric (``device``,
            ``batch_size``, ``whole_image_fallback``, ...).

    Raises:
        ValueError: unknown network, or an embedder whose name contradicts ``network``.
        MetricUnavailable: dlib is not installed or the network's weights are missing (checked
            when the metric is built; the network itself is loaded on first use).
    """

    def __init__(self, *, network: str | None = None, embedder: face_embedding.FaceEmbedder | None = None,
                 **embedder_options: Any):
        network = network or face_embedding.DEFAULT_ID_NETWORK
        embedders = face_embedding.EMBEDDERS
        if network not in embedders:
            raise ValueError(f"unknown ID-SIM network {network!r}; choose one of {', '.join(embedders)}")
        name = getattr(embedder, "name", network)
        if embedder is not None and name != network:
            raise ValueError(f"the given embedder is {name!r} but network={network!r}; pass network={name!r}")
        if embedder is None:
            problem = face_embedding.embedder_problem(network)
            if problem is not None:
                raise MetricUnavailable("id_sim", problem)
        self.network = network
        self._embedder = embedder
        self._embedder_options = embedder_options

    @property
    def description(self) -> str:
        """One line for reports, naming the identity network (e.g. ``ID-SIM (dlib ResNet 128-d; ...)``)."""
        return f"ID-SIM ({face_embedding.EMBEDDERS[self.network].description})"

    @property
    def embedder(self) -> face_embedding.FaceEmbedder:
        """The face embedder, built on first use (loading a network takes a moment)."""
        if self._embedder is None:
            self._embedder = face_embedding.build_face_embedder(self.network, metric="id_sim", **self._embedder_options)
        return self._embedder

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Unit identity embeddings of the main face of each image.

        Args:
            images: (n, h, w, 3) uint8 RGB images.

        Returns:
            (n, d) float32, a NaN row where no face was found; ground-truth embeddings can be
            computed once this way and passed to ``__call__``.
        """
        return self.embedder.embed(check_image_batch(images, "images"))

    @staticmethod
    def similarity(a_emb: np.ndarray, b_emb: np.ndarray) -> np.ndarray:
        """Row-wise cosine of two (n, d) embedding arrays -> (n,) float64 (NaN rows propagate)."""
        return cosine_similarity(a_emb, b_emb)

    def __call__(
        self, outputs: np.ndarray, targets: np.ndarray | None = None, *, target_embeddings: np.ndarray | None = None
    ) -> np.ndarray:
        """Per-frame ID-SIM.

        Args:
            outputs: (n, h, w, 3) uint8 generated frames.
            targets: (n, h, w, 3) uint8 ground-truth frames; may be left out when
                ``target_embeddings`` is given.
            target_embeddings: (n, d) ground-truth embeddings from :meth:`embed`.

        Returns:
            (n,) float64 cosines in [-1, 1], NaN where the output or the ground truth has no face.
        """
        if target_embeddings is None:
            if targets is None:
                raise ValueError("id_sim needs the ground-truth frames (targets) or their target_embeddings")
            outputs, targets = check_pairs(outputs, targets)
            target_embeddings = self.embed(targets)
        else:
            outputs = check_image_batch(outputs, "outputs")
            if targets is not None:
                outputs, targets = check_pairs(outputs, targets)
            if len(target_embeddings) != len(outputs):
                raise ValueError(f"{len(outputs)} outputs but {len(target_embeddings)} target_embeddings")
        return self.similarity(self.embed(outputs), target_embeddings)
